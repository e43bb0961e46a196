"""Media files the tests make themselves (nothing binary is committed)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def silence(path: Path, seconds: int, rate: int = 8000, container: str = "flac") -> Path:
    """`seconds` of silence, a few KB of FLAC for any length: the shape of a decompression bomb."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("flac" if container == "flac" else "pcm_s16le", rate=rate, layout="mono")
        step = rate  # one second per frame
        for second in range(seconds):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, step), dtype=np.int16), format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, second * step
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
