"""Real-time factor of transcription through onebox against faster-whisper in-process, on the same clip.

    .venv/bin/python bench/transcription.py [--rounds 3] [--port 0] [--models-path models]

The clip is a paragraph spoken by the `voice-en-us-joe` model through onebox's /v1/audio/speech (WAV).
onebox: POST /v1/audio/transcriptions (multipart upload, worker decode, gRPC, JSON), timed at the client.
In-process: faster-whisper's WhisperModel on the same folder with the model YAML's settings (int8, beam 5,
every core), decoding the same file. Each round runs both sides one after the other (never at once: they
share the cores), alternating which goes first, after one warm-up each; a side's figure is the median over
rounds of (seconds to transcribe / seconds of audio). Lower is better; below 1 is faster than real time.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import httpx
from faster_whisper import WhisperModel
from harness import REPO, onebox_server

WHISPER, VOICE = "whisper-base", "voice-en-us-joe"
PARAGRAPH = (
    "The old fisherman repaired his wooden boat near the harbour every morning. "
    "A young student painted the red bicycle outside the library before the summer holidays began. "
    "My neighbour reads about ancient maps in the evening, and the tired doctor photographs wild flowers "
    "by the river on the weekend. Nobody knows why the market by the old bridge closes so early."
)

log = logging.getLogger("bench.transcription")


def speak(url: str, path: Path) -> float:
    body = {"model": VOICE, "voice": "joe", "input": PARAGRAPH, "response_format": "wav"}
    reply = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=300)
    reply.raise_for_status()
    path.write_bytes(reply.content)
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def onebox_transcribe(url: str, clip: Path) -> str:
    with clip.open("rb") as f:
        files = {"file": (clip.name, f, "audio/wav")}
        reply = httpx.post(
            f"{url}/v1/audio/transcriptions", data={"model": WHISPER}, files=files, timeout=600
        )
    reply.raise_for_status()
    return reply.json()["text"]


def in_process(models_path: Path) -> Callable[[Path], str]:
    model = WhisperModel(
        str(models_path / WHISPER), device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1
    )

    def transcribe(clip: Path) -> str:
        segments, _ = model.transcribe(str(clip), beam_size=5)
        return "".join(s.text for s in segments).strip()

    return transcribe


def timed(run: Callable[[], str]) -> tuple[float, str]:
    started = time.perf_counter()
    text = run()
    return time.perf_counter() - started, text


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models-path", type=Path, default=REPO / "models")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    models_path = args.models_path.resolve()
    with tempfile.TemporaryDirectory() as tmp, onebox_server(models_path, port=args.port) as port:
        url = f"http://127.0.0.1:{port}"
        clip = Path(tmp) / "clip.wav"
        seconds = speak(url, clip)
        local = in_process(models_path)
        sides: dict[str, Callable[[], str]] = {
            "onebox": lambda: onebox_transcribe(url, clip),
            "in-process": lambda: local(clip),
        }
        texts = {name: run() for name, run in sides.items()}  # warm-up: loads the worker, fills caches
        factors: dict[str, list[float]] = {name: [] for name in sides}
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for name in order:
                elapsed, texts[name] = timed(sides[name])
                factors[name].append(elapsed / seconds)
    report(seconds, factors, texts)
    return 0


def report(seconds: float, factors: dict[str, list[float]], texts: dict[str, str]) -> None:
    log.info("clip: %.1f s of speech (Piper voice-en-us-joe), whisper-base int8, beam 5, %d cores",
             seconds, os.cpu_count() or 1)  # fmt: skip
    medians = {name: statistics.median(values) for name, values in factors.items()}
    for name, values in factors.items():
        log.info("%-10s RTF median %.3f (%.1fx real time)  rounds: %s", name, medians[name],
                 1 / medians[name], ", ".join(f"{v:.3f}" for v in values))  # fmt: skip
    log.info(
        "onebox overhead: %+.1f%% of in-process time", 100 * (medians["onebox"] / medians["in-process"] - 1)
    )
    log.info("same text on both sides: %s", texts["onebox"] == texts["in-process"])
    log.info("text: %s", texts["onebox"])


if __name__ == "__main__":
    sys.exit(main())
