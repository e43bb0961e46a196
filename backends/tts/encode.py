"""Encoding 16-bit mono samples into the audio files /v1/audio/speech returns.

PyAV's wheels bundle FFmpeg with its mp3 (LAME), AAC, Opus and FLAC encoders, so every OpenAI format is
available without system packages. `pcm` is raw 24 kHz signed 16-bit little-endian, as OpenAI sends it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from backends.errors import InvalidRequest


@dataclass(frozen=True)
class Format:
    container: str
    codec: str
    content_type: str
    rate: int | None = None  # None: keep the voice's sample rate


FORMATS: dict[str, Format] = {
    "wav": Format("wav", "pcm_s16le", "audio/wav"),
    "mp3": Format("mp3", "libmp3lame", "audio/mpeg"),
    "flac": Format("flac", "flac", "audio/flac"),
    "opus": Format("ogg", "libopus", "audio/ogg", rate=48000),  # Opus runs at 48 kHz only
    "aac": Format("adts", "aac", "audio/aac"),
}
PCM_RATE = 24000
PCM_CONTENT_TYPE = "audio/pcm"


def encode(samples: np.ndarray, rate: int, name: str) -> tuple[bytes, str]:
    """int16 mono samples at `rate` -> (file bytes, content type)."""
    frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    if name == "pcm":
        resampler = av.AudioResampler(format="s16", layout="mono", rate=PCM_RATE)
        frames = [*resampler.resample(frame), *resampler.resample(None)]
        return b"".join(f.to_ndarray().tobytes() for f in frames), PCM_CONTENT_TYPE
    try:
        spec = FORMATS[name]
    except KeyError:
        raise InvalidRequest(
            f"unsupported response_format {name!r}; supported: {', '.join(sorted([*FORMATS, 'pcm']))}",
            param="response_format",
        ) from None
    return encode_file(frame, spec), spec.content_type


def encode_file(frame: av.AudioFrame, spec: Format) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=spec.container) as out:
        stream = out.add_stream(spec.codec, rate=spec.rate or frame.sample_rate, layout="mono")
        codec = stream.codec_context
        # encoders with a fixed frame size (AAC 1024, MP3 1152, Opus 960) get frames cut to that size
        frame_size = codec.frame_size or None
        resampler = av.AudioResampler(
            format=codec.format.name, layout="mono", rate=codec.sample_rate, frame_size=frame_size
        )
        for converted in [*resampler.resample(frame), *resampler.resample(None)]:
            out.mux(stream.encode(converted))
        out.mux(stream.encode(None))
    return buffer.getvalue()
