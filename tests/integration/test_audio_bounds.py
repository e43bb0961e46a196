"""The whisper backend's decoder against decompression bombs: a file is judged by what it decodes to,
not by its upload size (real PyAV decoding of files made here; no model needed)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from backends.errors import InvalidRequest
from backends.whisper import model as whisper
from tests.media import silence


def test_audio_within_the_limit_decodes_to_16khz(tmp_path: Path) -> None:
    audio = whisper.read_audio(str(silence(tmp_path / "a.flac", 3)), max_seconds=10)
    assert audio.dtype == np.float32
    assert abs(audio.size - 3 * whisper.SAMPLE_RATE) < whisper.SAMPLE_RATE // 10


def test_a_declared_length_over_the_limit_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = silence(tmp_path / "long.flac", 40)
    monkeypatch.setattr(whisper, "decode_bounded", lambda *a: pytest.fail("decoded a file it should refuse"))
    with pytest.raises(InvalidRequest, match="longer than this server transcribes"):
        whisper.read_audio(str(path), max_seconds=30)


def test_decoding_stops_at_the_limit_whatever_the_header_claims(tmp_path: Path, monkeypatch) -> None:
    path = silence(tmp_path / "long.flac", 40)
    monkeypatch.setattr(whisper, "check_declared", lambda *a: None)  # a header that lies about its length
    with pytest.raises(InvalidRequest, match="longer than this server transcribes"):
        whisper.read_audio(str(path), max_seconds=30)


def test_a_wav_declaring_one_sample_a_second_is_refused(tmp_path: Path) -> None:
    data = b"\x00\x01" * 500  # 500 samples: 500 "seconds" at 1 Hz, minutes once resampled to 16 kHz
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 1, 2, 2, 16
    ) + b"data" + struct.pack("<I", len(data))  # fmt: skip
    path = tmp_path / "one-hertz.wav"
    path.write_bytes(header + data)
    with pytest.raises(InvalidRequest, match="declares 1 samples a second"):
        whisper.read_audio(str(path), max_seconds=1800)
