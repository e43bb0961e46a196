"""The gallery through the real `onebox run` and the real `onebox models` CLI.

A file server on 127.0.0.1, started here, serves the installed SmolLM2 GGUF and a gallery index naming it;
another stands in for Hugging Face (through HF_ENDPOINT) and serves the installed Whisper and Piper files
at the paths the built-in index names. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from aiohttp import web

from gallery.download import http_url, huggingface_endpoint, is_huggingface
from gallery.index import builtin_index, parse_index
from tests.e2e.conftest import CHAT_MODEL, MODELS, REPO, OneboxServer

pytestmark = pytest.mark.e2e

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# the file servers here are on 127.0.0.1 over plain http: as their operator, the tests allow both
LOCAL_SOURCES = ("--allow-private-downloads", "--allow-http-downloads")


class LocalFileServer:
    """Serves a folder over HTTP on 127.0.0.1 from a thread of its own (Range requests included)."""

    def __init__(self, folder: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner, port = asyncio.run_coroutine_threadsafe(self._start(folder), self.loop).result(10)
        self.url = f"http://127.0.0.1:{port}"

    @staticmethod
    async def _start(folder: Path) -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_static("/", folder)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, runner.addresses[0][1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFileServer]:
    source = MODELS / CHAT_MODEL / GGUF
    if not source.is_file():
        pytest.fail("the default model is not installed: run `make models`")
    folder = tmp_path_factory.mktemp("served")
    os.link(source, folder / GGUF)
    srv = LocalFileServer(folder)
    entry = {
        "name": "smol-gallery",
        "description": "SmolLM2 135M, served by the test",
        "license": "apache-2.0",
        "files": [{"filename": GGUF, "uri": f"{srv.url}/{GGUF}", "sha256": GGUF_SHA256,
                   "size": source.stat().st_size}],
        "config": {"backend": "llama-cpp", "context_size": 1024},
    }  # fmt: skip
    (folder / "index.yaml").write_text(yaml.safe_dump([entry]))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def gallery_server(
    files: LocalFileServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OneboxServer]:
    models = tmp_path_factory.mktemp("gallery") / "models"
    models.mkdir()
    srv = OneboxServer(models, "--galleries", f"local={files.url}/index.yaml", *LOCAL_SOURCES)
    yield srv
    srv.stop()


def wait_job(url: str, job_uuid: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/models/jobs/{job_uuid}").json()
        if job["phase"] in {"done", "failed", "cancelled"}:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_uuid} did not finish")


def test_installed_model_answers_chat_without_a_restart(gallery_server: OneboxServer) -> None:
    url = gallery_server.url
    assert [e["id"] for e in httpx.get(f"{url}/models/available").json()] == ["local@smol-gallery"]
    applied = httpx.post(f"{url}/models/apply", json={"id": "local@smol-gallery"})
    assert applied.status_code == 202
    job = wait_job(url, applied.json()["uuid"])
    assert job["phase"] == "done", job["error"]
    assert job["percent"] == 100.0
    assert "smol-gallery" in [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]
    reply = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "smol-gallery", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"]


def test_delete_takes_the_model_off_the_list(gallery_server: OneboxServer) -> None:
    url = gallery_server.url
    applied = httpx.post(f"{url}/models/apply", json={"id": "local@smol-gallery", "name": "smol-gone"})
    job = wait_job(url, applied.json()["uuid"])
    assert job["phase"] == "done", job["error"]
    assert httpx.post(f"{url}/models/delete/smol-gone").status_code == 200
    assert "smol-gone" not in [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]


def onebox(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "frontend.cli", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_installs_with_a_progress_bar_lists_and_removes(files: LocalFileServer, tmp_path: Path) -> None:
    flags = ["models", "--models-path", str(tmp_path), "--galleries", f"local={files.url}/index.yaml",
             *LOCAL_SOURCES]  # fmt: skip
    installed = onebox(*flags, "install", "smol-gallery", "--as", "smol-cli")
    assert installed.returncode == 0, installed.stderr
    assert "100.0%" in installed.stderr and "[" in installed.stderr
    assert (tmp_path / "smol-cli" / GGUF).is_file()
    assert "smol-cli" in onebox(*flags, "list").stdout
    available = onebox(*flags, "available").stdout
    assert "local@smol-gallery" in available
    assert onebox(*flags, "remove", "smol-cli").returncode == 0
    assert not (tmp_path / "smol-cli.yaml").exists()
    assert not (tmp_path / "smol-cli").exists()


# --- the built-in index, against a stand-in for Hugging Face ----------------------------------------------

# Built-in entries whose files `make models` has already put in models/<name>/ (same names, same bytes).
LOCAL_ENTRIES = ("whisper-base", "voice-en-us-joe")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 127.0.0.1 server laid out like huggingface.co/<owner>/<repo>/resolve/<revision>/<path>."""
    folder = tmp_path_factory.mktemp("hub")
    entries = {e.name: e for e in parse_index(builtin_index().read_text(), "index.yaml")}
    for name in LOCAL_ENTRIES:
        for spec in entries[name].files:
            source = MODELS / name / spec.filename
            if not source.is_file():
                pytest.fail(f"{source} is not installed: run `make models`")
            url = http_url(spec.uri or "")
            assert url and is_huggingface(url)
            served = folder / url.removeprefix(huggingface_endpoint() + "/")
            served.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, served)
    srv = LocalFileServer(folder)
    yield srv.url
    srv.stop()


def test_builtin_whisper_and_piper_entries_install_and_serve(
    hub: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The index's real URIs, revisions and sha256 values, installed over HTTP, then a spoken round trip."""
    models = tmp_path_factory.mktemp("from-hub") / "models"
    models.mkdir()
    server = OneboxServer(models, *LOCAL_SOURCES, env={"HF_ENDPOINT": hub})
    try:
        url = server.url
        for name in LOCAL_ENTRIES:
            applied = httpx.post(f"{url}/models/apply", json={"id": f"onebox@{name}", "name": f"{name}-hub"})
            assert applied.status_code == 202, applied.text
            job = wait_job(url, applied.json()["uuid"], timeout=120)
            assert job["phase"] == "done", job["error"]
        said = {"model": "voice-en-us-joe-hub", "input": "Hello from the gallery.", "response_format": "wav"}
        speech = httpx.post(f"{url}/v1/audio/speech", json=said, timeout=120)
        assert speech.status_code == 200, speech.text
        text = httpx.post(
            f"{url}/v1/audio/transcriptions",
            data={"model": "whisper-base-hub", "response_format": "text"},
            files={"file": ("speech.wav", speech.content, "audio/wav")},
            timeout=300,
        )
        assert text.status_code == 200, text.text
        assert "gallery" in text.text.lower()
    finally:
        server.stop()
