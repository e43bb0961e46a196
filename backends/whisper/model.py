"""The `whisper` backend: a Whisper model in CTranslate2 format, run by faster-whisper.

The model's `file` is the folder holding model.bin, config.json, tokenizer.json and vocabulary.txt. It never
reaches for a model hub: the manager starts workers with HF_HUB_OFFLINE=1 and the folder is a local path.
The frontend writes each upload into its upload folder; this worker decodes it (PyAV, which reads wav, mp3,
flac, ogg, webm, m4a and more) and never deletes it. Options: WhisperOptions in onebox_common/options.py.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import av
import grpc
import numpy as np
from faster_whisper import WhisperModel as FasterWhisper
from faster_whisper.tokenizer import _LANGUAGE_CODES

from backends.errors import InvalidRequest
from backends.options import load_options
from onebox_common.options import WhisperOptions
from onebox_proto import backend_pb2 as pb

log = logging.getLogger("onebox.worker.whisper")

SAMPLE_RATE = 16000
MIN_SAMPLE_RATE = 4000  # below telephone quality (8 kHz) there is no speech to transcribe
DEFAULT_MAX_SECONDS = 1800.0  # for a request that names no limit
# temperature 0 means "decide", as at OpenAI: start greedy and retry warmer when the output looks wrong
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
TASKS = {pb.TRANSCRIBE_TASK_TRANSCRIBE: "transcribe", pb.TRANSCRIBE_TASK_TRANSLATE: "translate"}


class WhisperModel:
    def __init__(self, request: pb.LoadModelRequest) -> None:
        started = time.perf_counter()
        options = load_options(WhisperOptions, request.options_json)
        self._beam_size = options.beam_size
        self._model = FasterWhisper(
            str(Path(request.model_path)),
            device="cpu",
            compute_type=options.compute_type,
            cpu_threads=request.threads or os.cpu_count() or 1,
            local_files_only=True,
        )
        self._load_seconds = time.perf_counter() - started
        log.info("whisper model %s, multilingual: %s", request.model_path, self._model.model.is_multilingual)

    def describe(self) -> pb.LoadModelResponse:
        return pb.LoadModelResponse(load_seconds=self._load_seconds)

    def Transcribe(
        self, request: pb.TranscribeRequest, context: grpc.ServicerContext
    ) -> pb.TranscribeResponse:
        language = check_language(request.language, self._model.model.is_multilingual)
        audio = read_audio(request.audio_path, request.max_seconds or DEFAULT_MAX_SECONDS)
        temperature = request.temperature if request.temperature > 0 else FALLBACK_TEMPERATURES
        segments, info = self._model.transcribe(
            audio,
            task=TASKS.get(request.task, "transcribe"),
            language=language,
            initial_prompt=request.prompt or None,
            temperature=temperature,
            beam_size=self._beam_size,
            word_timestamps=request.word_timestamps,
        )
        reply = pb.TranscribeResponse(language=info.language, duration=info.duration)
        for segment in segments:  # a generator: decoding happens as we iterate
            if not context.is_active():  # the client went away: stop decoding
                break
            reply.segments.append(to_segment(segment))
        reply.text = "".join(s.text for s in reply.segments).strip()
        return reply


def check_language(language: str, multilingual: bool) -> str | None:
    if not language:
        return None
    if language not in _LANGUAGE_CODES:
        raise InvalidRequest(
            f"unknown language {language!r}; use an ISO-639-1 code such as 'en'", param="language"
        )
    if not multilingual and language != "en":
        raise InvalidRequest("this model understands English only", param="language")
    return language


def read_audio(path: str, max_seconds: float) -> np.ndarray:
    """The file as 16 kHz mono float32; a file that is not audio is the client's fault.

    A 1 MB FLAC can hold hours of silence and a 1 KB WAV can declare a 1 Hz rate that resamples into minutes:
    the upload's size says nothing of what it decodes to. So the declared length is checked before decoding,
    and decoding stops at the limit whatever the header claimed.
    """
    try:
        with av.open(path, mode="r", metadata_errors="ignore") as container:
            stream = audio_stream(container)
            check_declared(stream, container.duration, max_seconds)
            audio = decode_bounded(container, stream, int(max_seconds * SAMPLE_RATE))
    except (av.error.FFmpegError, IndexError, ValueError) as error:
        # FFmpeg's message without the file name: the path is the server's business
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise InvalidRequest(f"the file could not be decoded as audio: {reason}", param="file") from None
    if audio.size == 0:
        raise InvalidRequest("the file holds no audio samples", param="file")
    return audio


def audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        raise InvalidRequest("the file holds no audio stream", param="file")
    stream = container.streams.audio[0]
    if stream.sample_rate and stream.sample_rate < MIN_SAMPLE_RATE:
        raise InvalidRequest(
            f"the audio declares {stream.sample_rate} samples a second; speech needs {MIN_SAMPLE_RATE}+",
            param="file",
        )
    return stream


def check_declared(stream: av.audio.stream.AudioStream, container_duration: int | None, limit: float) -> None:
    declared = [float(stream.duration * stream.time_base)] if stream.duration and stream.time_base else []
    if container_duration:
        declared.append(container_duration / av.time_base)
    if declared and max(declared) > limit:
        raise too_long(limit)


def decode_bounded(container: av.container.InputContainer, stream: object, max_samples: int) -> np.ndarray:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks, total = [], 0
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            chunk = out.to_ndarray().reshape(-1)
            total += chunk.size
            if total > max_samples:
                raise too_long(max_samples / SAMPLE_RATE)
            chunks.append(chunk)
    for out in resampler.resample(None):  # what the resampler still holds
        chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def too_long(limit: float) -> InvalidRequest:
    return InvalidRequest(
        f"the audio is longer than this server transcribes ({limit:.0f} seconds; --max-audio-seconds)",
        param="file",
    )


def to_segment(segment) -> pb.Segment:  # type: ignore[no-untyped-def]
    return pb.Segment(
        id=segment.id,
        start=segment.start,
        end=segment.end,
        text=segment.text,
        words=[pb.Word(start=w.start, end=w.end, word=w.word, probability=w.probability)
               for w in segment.words or ()],
        avg_logprob=segment.avg_logprob,
        no_speech_prob=segment.no_speech_prob,
        tokens=segment.tokens,
        temperature=segment.temperature or 0.0,
        compression_ratio=segment.compression_ratio,
    )  # fmt: skip
