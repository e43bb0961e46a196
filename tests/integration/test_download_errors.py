"""Issue 20, downloads that fail: named for a person, not retried when waiting cannot help, visible while
they wait. Everything stays on 127.0.0.1; the DNS failure comes from a resolver that sends nothing."""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from gallery.cli import Terminal
from gallery.index import EntryNotFound, parse_entry, parse_galleries
from gallery.installer import Installer
from gallery.jobs import Phase
from gallery.policy import DownloadPolicy

DATA = b"x" * 10_000
SHA = hashlib.sha256(DATA).hexdigest()
LOCAL = DownloadPolicy(allow_private=True, allow_http=True)


class Offline(AbstractResolver):
    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    async def close(self) -> None:
        pass


def entry(uri: str) -> object:
    return parse_entry({"name": "tiny", "files": [{"filename": "t.gguf", "uri": uri, "sha256": SHA}]}, "test")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_dns_failure_fails_at_once_and_says_so(models_path: Path) -> None:
    async with Installer(models_path, (), None, DownloadPolicy(), Offline()) as installer:
        job = await asyncio.wait_for(installer.install(entry("https://hub.example/t.gguf"), "t@tiny"), 5)
    assert job.phase is Phase.FAILED
    assert (
        job.error
        == "https://hub.example/t.gguf: cannot resolve host hub.example (no network, or no such host)"
    )


async def test_a_refused_connection_fails_at_once_and_says_so(models_path: Path) -> None:
    port = closed_port()
    async with Installer(models_path, (), None, LOCAL) as installer:
        job = await asyncio.wait_for(installer.install(entry(f"http://127.0.0.1:{port}/t.gguf"), "t@tiny"), 5)
    assert job.phase is Phase.FAILED
    assert f"connection refused by 127.0.0.1:{port}" in (job.error or "")
    assert "Error(" not in (job.error or "") and "0 bytes" not in (job.error or "")


async def test_a_job_that_waits_to_retry_says_retrying_and_why(aiohttp_server, models_path: Path) -> None:
    answers = iter([web.Response(status=503, headers={"Retry-After": "1"})])

    async def busy(request: web.Request) -> web.Response:
        return next(answers, None) or web.Response(body=DATA)

    app = web.Application()
    app.router.add_get("/t.gguf", busy)
    server = await aiohttp_server(app)
    async with Installer(models_path, (), None, LOCAL) as installer:
        job = installer.apply(entry(f"http://127.0.0.1:{server.port}/t.gguf"), "t@tiny")
        seen = set()
        while job.active:
            seen.add((job.phase, job.error))
            await asyncio.sleep(0.02)
    assert (Phase.RETRYING, "HTTP 503 Service Unavailable") in seen
    assert job.phase is Phase.DONE and job.error is None


def test_a_message_after_the_progress_bar_starts_on_a_line_of_its_own() -> None:
    out = io.StringIO()
    terminal = Terminal(out)
    terminal.bar("tiny [....] 0.0%")
    terminal.message("resuming in 1s")
    terminal.bar("tiny [#...] 25.0%")
    terminal.end_bar()
    assert out.getvalue() == "\rtiny [....] 0.0%\nresuming in 1s\n\rtiny [#...] 25.0%\n"


@pytest.mark.parametrize("name", ["qwen", "qwen2.5-0.5b-instruc"])
async def test_an_unknown_name_suggests_close_matches_and_the_command(models_path: Path, name: str) -> None:
    async with Installer(models_path, parse_galleries("")) as installer:
        with pytest.raises(EntryNotFound) as raised:
            await installer.find(name)
    assert "did you mean qwen2.5-0.5b-instruct" in str(raised.value)
    assert "`onebox models available`" in str(raised.value)
