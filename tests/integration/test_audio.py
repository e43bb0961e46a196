"""The audio endpoints' edge: form parsing, upload limits and clean-up, rendering, and speech encoding."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest

from backends.tts.encode import FORMATS, PCM_RATE, encode
from frontend.api.audio.render import srt, timestamp, vtt
from frontend.api.audio.routes import TranscriptionRequest
from frontend.api.audio.upload import UPLOADS
from frontend.app import create_app
from frontend.config import ServerConfig
from frontend.errors import InvalidRequest
from frontend.workers.messages import Segment

LIMIT = 64 * 1024


@pytest.fixture
async def client(aiohttp_client, models_path: Path, spawner):  # type: ignore[no-untyped-def]
    extra = {"audio_max_upload_bytes": LIMIT}
    config = ServerConfig(models_path=models_path, max_body_bytes=16384, extra=extra)
    return await aiohttp_client(create_app(config, spawn=spawner))


def form(data: bytes | None, **fields: str) -> aiohttp.FormData:
    body = aiohttp.FormData()
    for name, value in fields.items():
        body.add_field(name, value)
    if data is not None:
        body.add_field("file", io.BytesIO(data), filename="speech.wav", content_type="audio/wav")
    return body


def segment(start: float, end: float, text: str) -> Segment:
    return Segment(0, start, end, text, (), -0.2, 0.01, (1, 2), 0.0, 1.1)


# --- form fields ------------------------------------------------------------------------------------


def test_form_strings_become_typed_fields() -> None:
    granularities = ["word", "segment"]
    fields = {"model": ["whisper-base"], "temperature": ["0.2"], "timestamp_granularities[]": granularities}
    request = TranscriptionRequest.from_form(fields)
    assert request.temperature == pytest.approx(0.2)
    assert request.timestamp_granularities == ["word", "segment"]
    assert request.response_format == "json"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": ["m"], "response_format": ["mp3"]}, "response_format"),
        ({"model": ["m"], "temperature": ["hot"]}, "temperature"),
        ({"model": ["m"], "timestamp_granularities[]": ["char"]}, "timestamp_granularities[0]"),
        ({}, "model"),
    ],
)
def test_bad_form_field_is_refused_naming_it(fields: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        TranscriptionRequest.from_form(fields)
    assert caught.value.param == param


# --- uploads ----------------------------------------------------------------------------------------


async def test_upload_over_the_limit_returns_413(client) -> None:
    reply = await client.post("/v1/audio/transcriptions", data=form(b"x" * (LIMIT + 1), model="whisper-base"))
    assert reply.status == 413
    assert (await reply.json())["error"]["param"] == "file"


async def test_upload_larger_than_the_json_body_limit_is_read(client, write_model) -> None:
    write_model("whisper-base")  # the fake worker lacks Transcribe: reaching it means the upload was read
    reply = await client.post("/v1/audio/transcriptions", data=form(b"x" * 32768, model="whisper-base"))
    assert reply.status == 400
    assert (await reply.json())["error"]["code"] == "unsupported_by_model"


async def test_empty_file_returns_400(client) -> None:
    reply = await client.post("/v1/audio/transcriptions", data=form(b"", model="whisper-base"))
    assert reply.status == 400
    assert (await reply.json())["error"]["param"] == "file"


async def test_form_without_a_file_returns_400(client) -> None:
    reply = await client.post("/v1/audio/translations", data=form(None, model="whisper-base"))
    assert reply.status == 400
    assert (await reply.json())["error"]["param"] == "file"


async def test_json_body_returns_400_asking_for_multipart(client) -> None:
    reply = await client.post("/v1/audio/transcriptions", json={"model": "whisper-base"})
    assert reply.status == 400


async def test_uploads_are_removed_whatever_the_outcome(client) -> None:
    for data in (b"x" * (LIMIT + 1), b"", b"x" * 100):
        await client.post("/v1/audio/transcriptions", data=form(data, model="no-such-model"))
    assert list(client.app[UPLOADS].iterdir()) == []


async def test_speech_input_over_4096_characters_returns_400(client) -> None:
    body = {"model": "voice", "input": "a" * 4097, "voice": "joe"}
    reply = await client.post("/v1/audio/speech", json=body)
    assert reply.status == 400
    assert (await reply.json())["error"]["param"] == "input"


async def test_speech_unknown_format_lists_the_supported_ones(client) -> None:
    body = {"model": "voice", "input": "hi", "voice": "joe", "response_format": "ogg"}
    error = (await (await client.post("/v1/audio/speech", json=body)).json())["error"]
    assert error["param"] == "response_format"
    assert all(name in error["message"] for name in ("wav", "mp3", "flac", "opus", "aac", "pcm"))


# --- rendering --------------------------------------------------------------------------------------


def test_timestamps_use_the_format_separator() -> None:
    assert timestamp(3723.4567, ",") == "01:02:03,457"
    assert timestamp(0.0, ".") == "00:00:00.000"


def test_srt_numbers_its_cues_from_one() -> None:
    text = srt((segment(0.0, 1.5, " Hello."), segment(1.5, 3.0, " World.")))
    assert text == "1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n00:00:01,500 --> 00:00:03,000\nWorld.\n"


def test_vtt_starts_with_its_header() -> None:
    assert vtt((segment(0.0, 1.5, " Hello."),)) == "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello.\n"


# --- speech encoding (the tts worker's side) ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_decodes_back_to_the_same_duration(name: str) -> None:
    tone = (np.sin(np.arange(22050) * 2 * np.pi * 440 / 22050) * 8000).astype(np.int16)
    data, content_type = encode(tone, 22050, name)
    assert content_type == FORMATS[name].content_type
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        assert samples / stream.rate == pytest.approx(1.0, abs=0.1)


def test_pcm_is_raw_24khz_16_bit() -> None:
    data, content_type = encode(np.zeros(22050, dtype=np.int16), 22050, "pcm")
    assert content_type == "audio/pcm"
    assert len(data) / 2 == pytest.approx(PCM_RATE, rel=0.01)
