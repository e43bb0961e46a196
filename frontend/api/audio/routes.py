"""POST /v1/audio/transcriptions, /v1/audio/translations (multipart uploads) and /v1/audio/speech (JSON).

Transcription and translation stream the upload to a temporary file (frontend/api/audio/upload.py) that the
model's worker decodes; the result is rendered in the asked format (frontend/api/audio/render.py). Speech
returns the encoded file the worker made. The upload limit is `extra["audio_max_upload_bytes"]` of the
server config (25 MB by default, as OpenAI).
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from frontend.api.audio.render import render
from frontend.api.audio.upload import DEFAULT_MAX_UPLOAD_BYTES, UPLOADS, Upload, read_upload, uploads_ctx
from frontend.api.capabilities import SPEAK, TRANSCRIBE, require
from frontend.api.parsing import ModelName, parse_body, validation_error
from frontend.errors import InvalidRequest
from frontend.state import CONFIG, MANAGER
from frontend.workers.messages import TranscriptionJob

__all__ = ["routes", "uploads_ctx"]

routes = web.RouteTableDef()

MAX_SPEECH_CHARACTERS = 4096  # OpenAI's limit


class TranscriptionRequest(BaseModel):
    """The form fields of a transcription or translation (the file is read separately)."""

    model_config = ConfigDict(extra="ignore")

    model: ModelName
    language: str = ""  # ISO-639-1; empty: detect
    prompt: str = ""
    temperature: float = Field(0.0, ge=0, le=1)
    response_format: Literal["json", "text", "srt", "vtt", "verbose_json"] = "json"
    timestamp_granularities: list[Literal["segment", "word"]] = ["segment"]

    @classmethod
    def from_form(cls, fields: dict[str, list[str]]) -> TranscriptionRequest:
        data: dict[str, object] = {name: values[-1] for name, values in fields.items()}
        # OpenAI's clients send the list as repeated `timestamp_granularities[]` fields
        granularities = [
            *fields.get("timestamp_granularities[]", ()),
            *fields.get("timestamp_granularities", ()),
        ]
        data.pop("timestamp_granularities[]", None)
        if granularities:
            data["timestamp_granularities"] = granularities
        try:
            return cls.model_validate(data)  # lax: form fields are strings ("0.2" is a temperature)
        except ValidationError as error:
            raise validation_error(error) from None


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    input: str = Field(min_length=1, max_length=MAX_SPEECH_CHARACTERS)
    voice: str = ""
    response_format: Literal["wav", "mp3", "flac", "opus", "aac", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)


def upload_limit(request: web.Request) -> int:
    return int(request.app[CONFIG].extra.get("audio_max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES))


async def transcribe(request: web.Request, translate: bool) -> web.Response:
    async with read_upload(request, request.app[UPLOADS], upload_limit(request)) as upload:
        body = TranscriptionRequest.from_form(upload.fields)
        audio_path = check_file(upload)
        require(request, body.model, TRANSCRIBE)
        words = "word" in body.timestamp_granularities
        job = TranscriptionJob(audio_path, translate, body.language, body.prompt, body.temperature, words,
                               max_seconds=request.app[CONFIG].max_audio_seconds)  # fmt: skip
        async with request.app[MANAGER].use(body.model) as worker:
            result = await worker.transcribe(job)
    return render(result, body.response_format, "translate" if translate else "transcribe", words)


def check_file(upload: Upload) -> str:
    if upload.path is None:
        raise InvalidRequest("the form has no 'file' field: attach the audio file", param="file")
    if upload.size == 0:
        raise InvalidRequest("the audio file is empty", param="file")
    return str(upload.path)


@routes.post("/v1/audio/transcriptions")
async def transcriptions(request: web.Request) -> web.Response:
    return await transcribe(request, translate=False)


@routes.post("/v1/audio/translations")
async def translations(request: web.Request) -> web.Response:
    return await transcribe(request, translate=True)


@routes.post("/v1/audio/speech")
async def speech(request: web.Request) -> web.Response:
    body = await parse_body(request, SpeechRequest)
    require(request, body.model, SPEAK)
    async with request.app[MANAGER].use(body.model) as worker:
        result = await worker.synthesize(body.input, body.voice, body.speed, body.response_format)
    return web.Response(body=result.audio, content_type=result.content_type)
