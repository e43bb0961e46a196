"""Issue 19, the gallery: what a caller of POST /models/apply or /models/delete must not be able to do.

The files come from a server on 127.0.0.1 started here; the tests that show a download is refused never let
it connect (the resolver below answers without any network).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from frontend.app import create_app
from frontend.config import ServerConfig
from gallery.index import GallerySource, parse_entry
from gallery.installer import Installer
from gallery.jobs import Phase
from gallery.policy import DownloadPolicy, is_public

DATA = b"GGUF" + b"\0" * 300_000
SHA = hashlib.sha256(DATA).hexdigest()
SECRET = "hunter2-do-not-echo"


class Served:
    def __init__(self) -> None:
        self.hits: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{name}", self.serve)
        return app

    async def serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits.append(name)
        if name == "secrets.yaml":  # not YAML at all: a line of it would come back in yaml's own message
            return web.Response(text=f"password: {SECRET}\n  - : : [\n")
        if name == "chunked.gguf":  # no Content-Length: only counting the bytes finds the size
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(DATA), 50_000):
                await response.write(DATA[start : start + 50_000])
            return response
        return web.Response(body=DATA)


@pytest.fixture
async def served(aiohttp_server) -> tuple[Served, str]:
    target = Served()
    server = await aiohttp_server(target.app())
    return target, f"http://127.0.0.1:{server.port}"


def server_config(models_path: Path, **fields: object) -> ServerConfig:
    return ServerConfig(
        models_path=models_path, galleries=(("none", str(models_path / "none.yaml")),), **fields
    )


class FixedResolver(AbstractResolver):
    """Answers every name with one address: a public-looking name that resolves to a private address."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        return [{"hostname": host, "host": self.address, "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]  # fmt: skip

    async def close(self) -> None:
        pass


def tiny(uri: str, sha256: str | None = SHA) -> object:
    return parse_entry({"name": "tiny", "files": [{"filename": "tiny.gguf", "uri": uri, "sha256": sha256}],
                        "config": {"backend": "llama-cpp"}}, "test")  # fmt: skip


# -- SSRF -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "0.0.0.0", "::1", "fc00::1", "fe80::1", "::ffff:127.0.0.1"])  # fmt: skip
def test_local_and_private_addresses_are_not_public(address: str) -> None:
    assert not is_public(address)


def test_a_public_address_is_public() -> None:
    assert is_public("151.101.0.223") and is_public("2606:4700::1111")


async def test_apply_refuses_plain_http_by_default(aiohttp_client, models_path, served) -> None:
    target, base = served
    client = await aiohttp_client(create_app(server_config(models_path)))
    response = await client.post(
        "/models/apply", json={"url": f"{base}/tiny.gguf", "name": "t", "sha256": SHA}
    )
    assert response.status == 400
    assert "--allow-http-downloads" in (await response.json())["error"]["message"]
    assert target.hits == []


async def test_apply_refuses_a_loopback_address_without_a_port_scan_signal(
    aiohttp_client, models_path
) -> None:
    client = await aiohttp_client(create_app(server_config(models_path, allow_http_downloads=True)))
    url = "https://127.0.0.1:1/x.gguf"  # nothing listens there: today's error would say "connection refused"
    response = await client.post("/models/apply", json={"url": url, "name": "t", "sha256": SHA})
    assert response.status == 400
    message = (await response.json())["error"]["message"]
    assert "private or local address" in message and "refused" in message
    assert "connect" not in message


async def test_a_name_that_resolves_to_a_private_address_is_refused_at_connect(models_path) -> None:
    policy = DownloadPolicy()
    async with Installer(models_path, (), None, policy, FixedResolver("169.254.169.254")) as installer:
        job = await installer.install(tiny("https://metadata.example/latest/x.gguf"), "test@tiny")
    assert job.phase is Phase.FAILED
    assert "metadata.example resolves to a private or local address" in (job.error or "")
    assert not (models_path / "tiny").exists()


async def test_the_operator_may_allow_local_sources(models_path, served) -> None:
    _, base = served
    policy = DownloadPolicy(allow_private=True, allow_http=True)
    async with Installer(models_path, (), None, policy) as installer:
        job = await installer.install(tiny(f"{base}/tiny.gguf"), "test@tiny")
    assert job.phase is Phase.DONE, job.error


# -- remote content is never echoed -------------------------------------------------------------------


async def test_an_unparsable_remote_yaml_is_named_not_echoed(aiohttp_client, models_path, served) -> None:
    _, base = served
    config = server_config(models_path, allow_http_downloads=True, allow_private_downloads=True)
    client = await aiohttp_client(create_app(config))
    response = await client.post("/models/apply", json={"url": f"{base}/secrets.yaml"})
    assert response.status == 400
    message = (await response.json())["error"]["message"]
    assert f"{base}/secrets.yaml" in message and "not valid YAML" in message
    assert SECRET not in message and "password" not in message


# -- unverified writes, size cap ----------------------------------------------------------------------


async def test_a_file_without_sha256_is_refused(aiohttp_client, models_path, served) -> None:
    _, base = served
    config = server_config(models_path, allow_http_downloads=True, allow_private_downloads=True)
    client = await aiohttp_client(create_app(config))
    response = await client.post("/models/apply", json={"url": f"{base}/tiny.gguf", "name": "t"})
    assert response.status == 400
    assert "--allow-unverified-installs" in (await response.json())["error"]["message"]
    assert not (models_path / "t").exists()


async def test_the_size_cap_holds_while_streaming(models_path, served) -> None:
    _, base = served
    policy = DownloadPolicy(allow_private=True, allow_http=True, max_bytes=100_000)
    async with Installer(models_path, (), None, policy) as installer:
        job = await installer.install(tiny(f"{base}/chunked.gguf"), "test@tiny")
    assert job.phase is Phase.FAILED
    assert "larger than the download limit of 100000 bytes" in (job.error or "")
    assert not (models_path / "tiny").exists()


# -- symbolic links ------------------------------------------------------------------------------------


async def test_an_install_never_writes_through_a_link_in_the_models_folder(
    models_path: Path, tmp_path: Path, served
) -> None:
    _, base = served
    outside = tmp_path / "outside"
    outside.mkdir()
    (models_path / "tiny").symlink_to(outside)
    policy = DownloadPolicy(allow_private=True, allow_http=True)
    async with Installer(models_path, (), None, policy) as installer:
        job = await installer.install(tiny(f"{base}/tiny.gguf"), "test@tiny")
    assert job.phase is Phase.FAILED
    assert "symbolic link" in (job.error or "")
    assert list(outside.iterdir()) == []


async def test_a_link_planted_as_the_weights_file_is_not_followed(
    models_path: Path, tmp_path: Path, served
) -> None:
    _, base = served
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (models_path / "tiny").mkdir()
    (models_path / "tiny" / "tiny.gguf.partial").symlink_to(victim)
    policy = DownloadPolicy(allow_private=True, allow_http=True)
    async with Installer(models_path, (), None, policy) as installer:
        job = await installer.install(tiny(f"{base}/tiny.gguf"), "test@tiny")
    assert job.phase is Phase.DONE, job.error
    assert victim.read_text() == "keep me"
    assert (models_path / "tiny" / "tiny.gguf").read_bytes() == DATA


async def test_delete_leaves_a_folder_that_has_no_yaml(aiohttp_client, models_path: Path) -> None:
    (models_path / "notes").mkdir()
    (models_path / "notes" / "mine.txt").write_text("x")
    client = await aiohttp_client(create_app(server_config(models_path)))
    response = await client.post("/models/delete/notes")
    assert response.status == 404
    assert "has no notes.yaml" in (await response.json())["error"]["message"]
    assert (models_path / "notes" / "mine.txt").exists()


async def test_delete_refuses_a_model_folder_that_is_a_link(
    aiohttp_client, models_path: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.bin").write_text("x")
    (models_path / "evil").symlink_to(outside)
    (models_path / "evil.yaml").write_text(yaml.safe_dump({"name": "evil", "backend": "llama-cpp",
                                                          "file": "evil/precious.bin"}))  # fmt: skip
    client = await aiohttp_client(create_app(server_config(models_path)))
    response = await client.post("/models/delete/evil")
    assert response.status == 400
    assert "symbolic link" in (await response.json())["error"]["message"]
    assert (outside / "precious.bin").exists()


async def test_delete_removes_the_yaml_and_the_folder_it_names(aiohttp_client, models_path: Path) -> None:
    (models_path / "mine").mkdir()
    (models_path / "mine" / "w.gguf").write_bytes(b"x")
    (models_path / "mine.yaml").write_text(yaml.safe_dump({"name": "mine", "backend": "llama-cpp",
                                                          "file": "mine/w.gguf"}))  # fmt: skip
    client = await aiohttp_client(create_app(server_config(models_path)))
    assert (await client.post("/models/delete/mine")).status == 200
    assert not (models_path / "mine").exists() and not (models_path / "mine.yaml").exists()


async def test_the_gallery_index_is_read_through_the_same_policy(models_path: Path, served) -> None:
    target, base = served
    galleries = (GallerySource("remote", f"{base}/index.yaml"),)
    async with Installer(models_path, galleries) as installer:
        assert await installer.available() == []  # logged, not fetched: plain http to 127.0.0.1
    await asyncio.sleep(0)
    assert target.hits == []
