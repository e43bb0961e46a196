"""A fake worker: the real shared runner (backends/runner.py) serving a model that echoes its prompt.

Run as a script, it stands in for `python -m backends.runner` and accepts the same arguments. Every backend
kind maps to FakeModel here, so tests can use model YAMLs that pass the frontend's validation
(ModelConfig.backend is a Literal of the real kinds, and `options` are checked against that kind's).

What the fake does is set by its "weights": the model's file (LoadModelRequest.model_path) holds a JSON
object of these behaviours, written by the write_model fixture (tests/conftest.py). They live there, not in
the YAML's `options`, so that production validation knows nothing of the fake and needs no escape hatch: the
model file is the one thing a real backend interprets as it likes, and the fake does the same.

    fail_on_load: "message"   raise RuntimeError(message) from LoadModel
    crash_on_load: true       print a line, then os._exit(3) inside LoadModel
    token_delay: 0.05         sleep this many seconds before each token
    crash_after_tokens: 2     print a line, then os._exit(4) after streaming that many tokens
    start_child: true         start a `sleep` child process at load (to test stopping process trees)
    long_line_bytes: 100000   print one line this long at load, before anything else it prints
    load_delay: 0.5           sleep this many seconds in LoadModel
    allocate_mib: 200         hold this many MiB of touched (resident) memory once loaded
    hang_after_tokens: 1      after streaming that many tokens, stop making progress until cancelled
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from backends import runner  # noqa: E402
from onebox_proto import backend_pb2 as pb  # noqa: E402

FAKE_MODEL = "__main__:FakeModel"
LOAD_CRASH_EXIT = 3
GENERATE_CRASH_EXIT = 4


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class FakeModel:
    def __init__(self, request: pb.LoadModelRequest) -> None:
        self._options = behaviours(Path(request.model_path))
        self._context_size = request.context_size or 2048
        self._child: subprocess.Popen | None = None
        if length := self._options.get("long_line_bytes"):
            say("x" * length)
        if message := self._options.get("fail_on_load"):
            raise RuntimeError(message)
        if self._options.get("crash_on_load"):
            say("fake worker: crashing while loading on purpose")
            os._exit(LOAD_CRASH_EXIT)
        time.sleep(float(self._options.get("load_delay", 0)))
        # touched byte by byte (a bytes literal of 1s), so that it is resident, not just reserved
        self._ballast = b"\x01" * (int(self._options.get("allocate_mib", 0)) * 1024 * 1024)
        if self._options.get("start_child"):
            self._child = subprocess.Popen(["sleep", "120"])
            say(f"fake worker: started child {self._child.pid}")

    def describe(self) -> pb.LoadModelResponse:
        return pb.LoadModelResponse(has_chat_template=True, context_size=self._context_size, load_seconds=0.0)

    def Generate(
        self, request: pb.GenerateRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GenerateResponse]:
        words = prompt_text(request).split(" ")
        limit = request.max_tokens or len(words)
        delay = float(self._options.get("token_delay", 0))
        crash_after = self._options.get("crash_after_tokens")
        hang_after = self._options.get("hang_after_tokens")
        produced = 0
        for index, word in enumerate(words[:limit]):
            if delay:
                # Before the crash check too, so tokens already yielded have time to reach the client.
                time.sleep(delay)
            if crash_after is not None and produced >= crash_after:
                say("fake worker: crashing mid-generation on purpose")
                os._exit(GENERATE_CRASH_EXIT)
            while hang_after is not None and produced >= hang_after and context.is_active():
                time.sleep(0.05)
            if not context.is_active():
                return
            produced += 1
            yield pb.GenerateResponse(text=word if index == 0 else " " + word, tokens=1)
        finish = pb.FINISH_REASON_STOP if produced == len(words) else pb.FINISH_REASON_LENGTH
        yield pb.GenerateResponse(
            text="",
            tokens=0,
            finish_reason=finish,
            prompt_tokens=len(words),
            completion_tokens=produced,
        )


def behaviours(weights: Path) -> dict:
    """The JSON object in the stand-in weights file; none when it holds something else."""
    try:
        found = json.loads(weights.read_bytes())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def prompt_text(request: pb.GenerateRequest) -> str:
    """The raw prompt, or the last message of a chat: what the fake echoes."""
    if request.WhichOneof("input") == "chat":
        messages = request.chat.messages
        return messages[-1].content if messages else ""
    return request.prompt


def main(argv: list[str] | None = None) -> int:
    for kind in [*runner.BACKENDS, "fake"]:
        runner.BACKENDS[kind] = FAKE_MODEL
    return runner.main(argv)


if __name__ == "__main__":
    sys.exit(main())
