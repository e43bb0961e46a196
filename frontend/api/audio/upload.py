"""Reading a multipart/form-data audio upload: text fields in memory, the file streamed to disk.

The body is read with `request.multipart()` as it arrives, never with `request.post()`, which would hold
the whole file in memory and apply the app's JSON-sized `client_max_size` instead of the upload limit. The
file goes to a temporary file in the frontend's upload folder (not the models directory), which workers
read and which is always removed when the request ends, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from frontend.api.limits import LimitExceeded, body_deadline
from frontend.config import ServerConfig
from frontend.errors import InvalidRequest, PayloadTooLarge
from frontend.state import CONFIG

UPLOADS = web.AppKey("uploads", Path)
DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # OpenAI's limit
MAX_FIELD_BYTES = 64 * 1024  # a text field (prompt, model, ...)
FORM_OVERHEAD_BYTES = 1024 * 1024  # the text fields and multipart boundaries around the file
CHUNK = 64 * 1024
SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}$")


@dataclass
class Upload:
    fields: dict[str, list[str]] = field(default_factory=dict)
    path: Path | None = None  # the uploaded file, once read
    size: int = 0
    field_count: int = 0  # text fields read so far, and their bytes
    text_bytes: int = 0


async def uploads_ctx(app: web.Application) -> AsyncIterator[None]:
    """The upload folder lives as long as the app; anything a crash left behind goes with it."""
    folder = Path(tempfile.mkdtemp(prefix="onebox-uploads-"))
    app[UPLOADS] = folder
    yield
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.asynccontextmanager
async def read_upload(request: web.Request, folder: Path, limit: int) -> AsyncIterator[Upload]:
    """The form's fields and its `file`, on disk while the block runs and removed after it."""
    if request.content_type != "multipart/form-data":
        raise InvalidRequest("send the audio as multipart/form-data with a 'file' field", param="file")
    if request.content_length is not None and request.content_length > limit + FORM_OVERHEAD_BYTES:
        raise too_large(limit)  # aiohttp drains the unread body, so the client still reads this answer
    upload = Upload()
    try:
        try:
            async with body_deadline(request):
                reader = await request.multipart()
                await read_parts(reader, upload, folder, limit, request.app[CONFIG])
        except (ValueError, AssertionError, RuntimeError, BadHttpMessage) as error:  # a broken form
            raise InvalidRequest(f"the multipart/form-data body is malformed: {error}") from None
        yield upload
    finally:
        if upload.path is not None:
            upload.path.unlink(missing_ok=True)


async def read_parts(
    reader: MultipartReader, upload: Upload, folder: Path, limit: int, config: ServerConfig
) -> None:
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.name:
            continue
        if part.name == "file" and upload.path is None:
            upload.path = new_upload_path(folder, part.filename or "")
            upload.size = await save(part, upload.path, limit)
            continue
        upload.field_count += 1
        if config.max_form_fields and upload.field_count > config.max_form_fields:
            raise LimitExceeded(
                f"the form has more than {config.max_form_fields} fields (--max-form-fields)",
                limit="max_form_fields",
                param=part.name,
            )
        room = (
            config.max_form_text_bytes - upload.text_bytes if config.max_form_text_bytes else MAX_FIELD_BYTES
        )
        text = await read_field(part, room)
        upload.text_bytes += len(text.encode())
        upload.fields.setdefault(part.name, []).append(text)


def new_upload_path(folder: Path, filename: str) -> Path:
    suffix = match.group(0) if (match := SUFFIX.search(filename)) else ""
    handle, name = tempfile.mkstemp(dir=folder, prefix="upload-", suffix=suffix)
    os.close(handle)  # only mkstemp's safe, unique creation is wanted; save() writes the file
    return Path(name)


async def save(part: BodyPartReader, path: Path, limit: int) -> int:
    size = 0
    # small synchronous writes to a local file: cheaper than a thread hop per 64 KB chunk
    with path.open("wb") as out:
        while chunk := await part.read_chunk(CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            out.write(chunk)
    return size


async def read_field(part: BodyPartReader, room: int) -> str:
    """A text field of at most MAX_FIELD_BYTES, and at most `room` bytes: what the form's total has left.

    Fields are held in memory, so the total is bounded as well as each one: 4,000 fields of 60 KB each
    raised the server's memory by 150 MB before this limit."""
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise InvalidRequest(f"the form field {part.name!r} is too long", param=part.name)
        if len(data) > room:
            raise LimitExceeded(
                "the form's text fields together are longer than this server accepts (--max-form-text-size)",
                limit="max_form_text_size",
                param=part.name,
            )
    try:
        return data.decode(part.get_charset("utf-8"))
    except (UnicodeDecodeError, LookupError):
        raise InvalidRequest(f"the form field {part.name!r} is not valid text", param=part.name) from None


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the audio file is larger than this server accepts ({limit // (1024 * 1024)} MB)", param="file"
    )
