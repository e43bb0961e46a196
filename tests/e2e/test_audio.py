"""/v1/audio/* against the real server, the real Piper voice and the real Whisper base model."""

from __future__ import annotations

import difflib
import io
import re
import wave

import av
import httpx
import pytest

from tests.e2e.conftest import MODELS, OneboxServer

pytestmark = pytest.mark.e2e

WHISPER, VOICE = "whisper-base", "voice-en-us-joe"
SENTENCE = "The quick brown fox jumps over the lazy dog."
SRT_TIMING = re.compile(r"^\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}$", re.MULTILINE)
VTT_TIMING = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}$", re.MULTILINE)


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    for name, weights in ((WHISPER, "model.bin"), (VOICE, "en_US-joe-medium.onnx")):
        if not (MODELS / name / weights).is_file():
            pytest.fail(f"{name} is not installed: run `make models` (make test does)")


@pytest.fixture(scope="module")
def speech(client) -> bytes:
    """SENTENCE spoken by the TTS model, through the API, as a WAV file."""
    reply = client.audio.speech.create(model=VOICE, voice="joe", input=SENTENCE, response_format="wav")
    return reply.content


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def transcribe(
    server: OneboxServer, data: bytes, path: str = "transcriptions", **fields: str
) -> httpx.Response:
    files = {"file": ("speech.wav", data, "audio/wav")}
    return httpx.post(
        f"{server.url}/v1/audio/{path}", data={"model": WHISPER, **fields}, files=files, timeout=300
    )


def assert_error(reply: httpx.Response, status: int, param: str | None) -> None:
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["param"] == param, reply.text


# --- the round trip -------------------------------------------------------------------------------


def test_spoken_sentence_transcribes_to_the_same_words(client, speech: bytes) -> None:
    reply = client.audio.transcriptions.create(model=WHISPER, file=("speech.wav", speech))
    assert words(reply.text) == words(SENTENCE)


def test_speech_is_a_wav_file_of_the_voice(speech: bytes) -> None:
    with wave.open(io.BytesIO(speech)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22050)
        assert 1.0 < wav.getnframes() / wav.getframerate() < 10.0


def test_compressed_speech_transcribes_too(client) -> None:
    mp3 = client.audio.speech.create(model=VOICE, voice="joe", input=SENTENCE, response_format="mp3").content
    reply = client.audio.transcriptions.create(model=WHISPER, file=("speech.mp3", mp3), language="en")
    # lossy audio: whisper base may mishear a word ("round" for "brown"), but not lose the sentence
    assert difflib.SequenceMatcher(None, words(reply.text), words(SENTENCE)).ratio() >= 0.8


@pytest.mark.parametrize(("fmt", "codec"), [("flac", "flac"), ("opus", "opus"), ("aac", "aac")])
def test_speech_formats_decode_as_their_codec(client, fmt: str, codec: str) -> None:
    data = client.audio.speech.create(
        model=VOICE, voice="joe", input="Hello there.", response_format=fmt
    ).content
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.audio[0].codec_context.name == codec
        assert sum(frame.samples for frame in container.decode(audio=0)) > 0


def test_faster_speech_is_shorter(client) -> None:
    def seconds(speed: float) -> float:
        reply = client.audio.speech.create(
            model=VOICE, voice="joe", input=SENTENCE, response_format="pcm", speed=speed
        )
        return len(reply.content) / 2 / 24000  # raw 16-bit samples at 24 kHz

    assert seconds(2.0) < 0.75 * seconds(1.0)


# --- response formats -----------------------------------------------------------------------------


def test_text_format_is_plain_text(server, speech: bytes) -> None:
    reply = transcribe(server, speech, response_format="text")
    assert reply.headers["content-type"].startswith("text/plain")
    assert words(reply.text) == words(SENTENCE)


def test_srt_format_has_numbered_cues_with_timing_lines(server, speech: bytes) -> None:
    lines = transcribe(server, speech, response_format="srt").text.splitlines()
    assert lines[0] == "1"
    assert SRT_TIMING.match(lines[1])
    assert words(" ".join(lines[2:])) == words(SENTENCE)


def test_vtt_format_has_a_header_and_timing_lines(server, speech: bytes) -> None:
    text = transcribe(server, speech, response_format="vtt").text
    assert text.startswith("WEBVTT\n\n")
    assert len(VTT_TIMING.findall(text)) >= 1


def test_verbose_json_has_segments_language_and_duration(client, speech: bytes) -> None:
    reply = client.audio.transcriptions.create(
        model=WHISPER, file=("speech.wav", speech), response_format="verbose_json"
    )
    assert reply.language == "en"
    assert 1.0 < reply.duration < 10.0
    assert reply.segments
    assert [s.id for s in reply.segments] == list(range(len(reply.segments)))
    for segment in reply.segments:
        assert 0 <= segment.start < segment.end <= reply.duration + 0.5
    assert words("".join(s.text for s in reply.segments)) == words(SENTENCE)


def test_word_granularity_gives_timed_words(client, speech: bytes) -> None:
    reply = client.audio.transcriptions.create(
        model=WHISPER,
        file=("speech.wav", speech),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert words(" ".join(w.word for w in reply.words)) == words(SENTENCE)
    starts = [w.start for w in reply.words]
    assert starts == sorted(starts)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the openai client marks translations deprecated
def test_translation_returns_english_text(client, speech: bytes) -> None:
    reply = client.audio.translations.create(model=WHISPER, file=("speech.wav", speech))
    assert "fox" in words(reply.text)


def test_upload_larger_than_the_json_body_limit_is_accepted(server, speech: bytes) -> None:
    # the session server's --max-body-size is 2 MB; audio uploads have their own 25 MB limit
    padded = pad_with_silence(speech, seconds=60)
    assert len(padded) > 2 * 1024 * 1024
    reply = transcribe(server, padded, response_format="json")
    assert reply.status_code == 200, reply.text
    assert "fox" in words(reply.json()["text"])


# --- bad uploads ------------------------------------------------------------------------------------


def test_corrupt_file_returns_400_and_the_worker_keeps_serving(server, speech: bytes) -> None:
    assert transcribe(server, speech).status_code == 200
    before = [w.pid for w in server.workers(WHISPER)]
    assert_error(transcribe(server, b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 50), 400, "file")
    assert_error(transcribe(server, b"just some text, not audio at all\n" * 100), 400, "file")
    assert transcribe(server, speech).status_code == 200
    assert [w.pid for w in server.workers(WHISPER)] == before  # the same worker, never restarted


def test_empty_file_returns_400(server) -> None:
    assert_error(transcribe(server, b""), 400, "file")


def test_oversized_file_returns_413_and_the_server_keeps_serving(server, speech: bytes) -> None:
    assert_error(transcribe(server, b"\x00" * (26 * 1024 * 1024)), 413, "file")
    assert transcribe(server, speech).status_code == 200


def test_unknown_language_returns_400(server, speech: bytes) -> None:
    assert_error(transcribe(server, speech, language="klingon"), 400, "language")


# --- bad speech requests ------------------------------------------------------------------------------


def speak(server: OneboxServer, **body: object) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/audio/speech", json={"model": VOICE, "voice": "joe", **body}, timeout=120
    )


@pytest.mark.parametrize("text", ["", "a" * 4097])
def test_empty_or_too_long_input_returns_400(server, text: str) -> None:
    assert_error(speak(server, input=text), 400, "input")


def test_unsupported_speech_format_returns_400(server) -> None:
    assert_error(speak(server, input="hi", response_format="ogg"), 400, "response_format")


def pad_with_silence(data: bytes, seconds: float) -> bytes:
    with wave.open(io.BytesIO(data)) as source:
        params, frames = source.getparams(), source.readframes(source.getnframes())
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setparams(params)
        target.writeframes(frames + b"\x00" * int(seconds * params.framerate * params.sampwidth))
    return out.getvalue()
