"""gallery/: installs from a local HTTP server on 127.0.0.1 (started here), resume, checksums, safety."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from gallery.download import DownloadError, http_url, local_path
from gallery.index import AlreadyInstalled, Entry, GallerySource, InvalidEntry, parse_entry
from gallery.installer import Installer
from gallery.jobs import Phase
from gallery.policy import DownloadPolicy

DATA = os.urandom(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(DATA).hexdigest()


class FileServer:
    """Serves DATA at /file.bin (Range honoured), /drop.bin (first answer cut halfway), /slow.bin."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "file.bin").write_bytes(DATA)
        self.requests: list[dict] = []
        self.dropped = False
        self.busy_left = 2  # /busy.bin answers 503 this many times first

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/file.bin", self.file)
        app.router.add_get("/owner/repo/resolve/main/file.bin", self.file)
        app.router.add_get("/owner/gated/resolve/main/file.bin", self.gated)
        app.router.add_get("/drop.bin", self.drop)
        app.router.add_get("/slow.bin", self.slow)
        app.router.add_get("/busy.bin", self.busy)
        return app

    async def file(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        return web.FileResponse(self.folder / "file.bin")

    async def drop(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self.dropped:
            return web.FileResponse(self.folder / "file.bin")
        self.dropped = True
        response = web.StreamResponse()
        response.content_length = len(DATA)
        await response.prepare(request)
        await response.write(DATA[: len(DATA) // 2])
        assert request.transport is not None
        request.transport.close()  # the connection drops mid-body
        return response

    async def gated(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=401)

    async def busy(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self.busy_left:
            self.busy_left -= 1
            return web.Response(status=503, headers={"Retry-After": "0"})
        return web.FileResponse(self.folder / "file.bin")

    async def slow(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = len(DATA)
        await response.prepare(request)
        for start in range(0, len(DATA), 64 * 1024):
            await response.write(DATA[start : start + 64 * 1024])
            await asyncio.sleep(0.02)
        return response


@pytest.fixture
async def files(aiohttp_server, tmp_path: Path) -> tuple[FileServer, str]:
    folder = tmp_path / "served"
    folder.mkdir()
    fs = FileServer(folder)
    server = await aiohttp_server(fs.app())
    return fs, f"http://127.0.0.1:{server.port}"


# the file server is on 127.0.0.1 over plain http: as its operator, the tests allow both
LOCAL = DownloadPolicy(allow_private=True, allow_http=True, max_bytes=1 << 62)


@pytest.fixture
async def installer(models_path: Path, tmp_path: Path):
    async with Installer(
        models_path, (GallerySource("test", str(tmp_path / "index.yaml")),), tmp_path, LOCAL
    ) as inst:
        yield inst


def entry(url: str, name: str = "tiny", sha256: str = SHA, filename: str = "tiny.gguf") -> Entry:
    return parse_entry(
        {
            "name": name,
            "files": [{"filename": filename, "uri": url, "sha256": sha256, "size": len(DATA)}],
            "config": {"backend": "llama-cpp", "context_size": 512},
        },
        "test",
    )


async def test_install_puts_the_file_in_its_folder_and_writes_the_yaml(files, installer, models_path) -> None:
    _, base = files
    job = await installer.install(entry(f"{base}/file.bin"), "test@tiny")
    assert job.phase is Phase.DONE, job.error
    assert (models_path / "tiny" / "tiny.gguf").read_bytes() == DATA
    config = yaml.safe_load((models_path / "tiny.yaml").read_text())
    assert config == {"name": "tiny", "backend": "llama-cpp", "context_size": 512, "file": "tiny/tiny.gguf"}
    assert job.describe()["percent"] == 100.0
    assert job.bytes_done == len(DATA)


async def test_dropped_connection_resumes_with_range(files, installer, models_path) -> None:
    server, base = files
    job = await installer.install(entry(f"{base}/drop.bin"), "test@tiny")
    assert job.phase is Phase.DONE, job.error
    assert (models_path / "tiny" / "tiny.gguf").read_bytes() == DATA
    assert server.requests[-1]["Range"] == f"bytes={len(DATA) // 2}-"


async def test_transient_http_errors_are_retried(files, installer, models_path) -> None:
    server, base = files
    job = await installer.install(entry(f"{base}/busy.bin"), "test@tiny")
    assert job.phase is Phase.DONE, job.error
    assert (models_path / "tiny" / "tiny.gguf").read_bytes() == DATA
    assert len(server.requests) == 3


async def test_a_source_that_stays_down_fails_the_job_and_leaves_nothing(
    files, installer, models_path
) -> None:
    server, base = files
    server.busy_left = 100  # each 503 says Retry-After: 0, so the six attempts take no time
    job = await installer.install(entry(f"{base}/busy.bin"), "test@tiny")
    assert job.phase is Phase.FAILED
    assert "6 failed attempts" in (job.error or "") and "503" in (job.error or "")
    assert not (models_path / "tiny").exists()


async def test_wrong_sha256_fails_and_leaves_nothing(files, installer, models_path) -> None:
    _, base = files
    job = await installer.install(entry(f"{base}/file.bin", sha256="0" * 64), "test@tiny")
    assert job.phase is Phase.FAILED
    assert "sha256 mismatch" in (job.error or "")
    assert not (models_path / "tiny").exists()
    assert not (models_path / "tiny.yaml").exists()


@pytest.mark.parametrize("filename", ["../evil.gguf", "/etc/evil", "a/../../evil", "a\\b", ""])
def test_unsafe_file_names_are_refused(filename: str) -> None:
    with pytest.raises(InvalidEntry, match="filename"):
        entry("http://127.0.0.1:1/x", filename=filename)


async def test_two_installs_of_the_same_model_are_one_job(files, installer) -> None:
    _, base = files
    first = installer.apply(entry(f"{base}/slow.bin"), "test@tiny")
    second = installer.apply(entry(f"{base}/slow.bin"), "test@tiny")
    assert first is second
    assert first.task is not None
    await first.task
    assert first.phase is Phase.DONE


async def test_cancel_stops_the_job_and_leaves_nothing(files, installer, models_path) -> None:
    _, base = files
    job = installer.apply(entry(f"{base}/slow.bin"), "test@tiny")
    while job.bytes_done == 0:
        await asyncio.sleep(0.01)
    installer.cancel(job.uuid)
    await asyncio.gather(job.task, return_exceptions=True)
    assert job.phase is Phase.CANCELLED
    assert not (models_path / "tiny").exists()
    assert not (models_path / "tiny.yaml").exists()


async def test_remove_deletes_the_yaml_and_the_folder(files, installer, models_path) -> None:
    _, base = files
    await installer.install(entry(f"{base}/file.bin"), "test@tiny")
    installer.remove("tiny")
    assert not (models_path / "tiny").exists()
    assert not (models_path / "tiny.yaml").exists()


async def test_installing_over_an_installed_model_is_refused(files, installer) -> None:
    _, base = files
    await installer.install(entry(f"{base}/file.bin"), "test@tiny")
    with pytest.raises(AlreadyInstalled):
        installer.apply(entry(f"{base}/file.bin"), "test@tiny")


async def test_not_enough_disk_fails_before_downloading(files, installer, models_path) -> None:
    _, base = files
    huge = parse_entry(
        {
            "name": "huge",
            "files": [{"filename": "x.gguf", "uri": f"{base}/file.bin", "size": 1 << 60, "sha256": SHA}],
        },
        "t",
    )
    job = await installer.install(huge, "test@huge")
    assert job.phase is Phase.FAILED
    assert "free disk" in (job.error or "")
    assert not (models_path / "huge").exists()


async def test_parts_are_concatenated(files, installer, models_path, tmp_path) -> None:
    _, base = files
    (tmp_path / "tail.bin").write_bytes(b"tail")
    spec = {"filename": "joined.bin", "parts": [f"{base}/file.bin", "file://tail.bin"]}
    spec["sha256"] = hashlib.sha256(DATA + b"tail").hexdigest()
    job = await installer.install(parse_entry({"name": "joined", "files": [spec]}, "t"), "t@joined")
    assert job.phase is Phase.DONE, job.error
    assert (models_path / "joined" / "joined.bin").read_bytes() == DATA + b"tail"


async def test_bad_override_fails_before_any_download(files, installer) -> None:
    _, base = files
    with pytest.raises(InvalidEntry, match="context_size"):
        installer.apply(entry(f"{base}/file.bin"), "test@tiny", overrides={"context_size": 1})


async def test_misspelled_option_override_fails_naming_the_key(files, installer) -> None:
    _, base = files
    with pytest.raises(InvalidEntry, match=r"tiny: config key 'options\.batch_sise'"):
        installer.apply(entry(f"{base}/file.bin"), "test@tiny", overrides={"options": {"batch_sise": 8}})


def test_huggingface_uris_become_resolve_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    expected = "https://huggingface.co/owner/repo/resolve/main/dir/file.gguf"
    assert http_url("huggingface://owner/repo/dir/file.gguf") == expected
    assert http_url("hf://owner/repo/dir/file.gguf") == expected
    pinned = "https://huggingface.co/owner/repo/resolve/v1.0.0/file.onnx"
    assert http_url("hf://owner/repo@v1.0.0/file.onnx") == pinned
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    assert http_url("hf://owner/repo/file.onnx") == "http://127.0.0.1:9/owner/repo/resolve/main/file.onnx"
    for bad in ("hf://owner/repo", "hf://owner/repo@/file.onnx"):
        with pytest.raises(DownloadError):
            http_url(bad)


async def test_hf_token_goes_to_the_huggingface_endpoint_only(
    files, installer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served, base = files
    monkeypatch.setenv("HF_ENDPOINT", base)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    job = await installer.install(entry("hf://owner/repo/file.bin", name="gated"), "test@gated")
    assert job.phase is Phase.DONE, job.error
    job = await installer.install(entry(f"{base.replace('127.0.0.1', 'localhost')}/file.bin"), "test@tiny")
    assert job.phase is Phase.DONE, job.error
    assert [r.get("Authorization") for r in served.requests] == ["Bearer hf_secret", None]


async def test_a_gated_repository_says_to_set_hf_token(files, installer, monkeypatch) -> None:
    _, base = files
    monkeypatch.setenv("HF_ENDPOINT", base)
    job = await installer.install(entry("hf://owner/gated/file.bin"), "test@tiny")
    assert job.phase is Phase.FAILED
    assert "HTTP 401" in (job.error or "") and "HF_TOKEN" in (job.error or "")


def test_file_uri_outside_the_allowed_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "inside.bin").write_bytes(b"x")
    assert local_path("file://inside.bin", tmp_path) == (tmp_path / "inside.bin").resolve()
    with pytest.raises(DownloadError, match="outside"):
        local_path("file://../outside.bin", tmp_path)
    with pytest.raises(DownloadError, match="off"):
        local_path("file://inside.bin", None)
