"""Grammars compiled first in a helper process of the worker, so that one crashing llama.cpp's parser
costs only the request that sent it.

llama.cpp parses GBNF recursively: deep nesting overflows its stack and kills the process (SIGSEGV),
which in the worker would cut every request on the model. The front end bounds grammars
(frontend/api/text/structured.py); this catches one that slips through. The helper loads only the model's
vocabulary, answers one verdict per grammar over a pipe, and exits when the worker does (its stdin closes).
A grammar that compiled once is remembered, so a client's repeated grammar costs one round trip.
(Forking the worker instead was tried: a fork of a process running gRPC threads crashed in the child.)

    python -m backends.llamacpp.grammar_check MODEL.gguf     # reads <length><grammar>, writes ok|bad|
"""

from __future__ import annotations

import logging
import os
import select
import struct
import subprocess
import sys
import threading

from backends.errors import InvalidRequest

log = logging.getLogger("onebox.worker.llama-cpp")

REMEMBERED = 256
ANSWER_SECONDS = 30.0  # the helper's first answer includes loading the vocabulary


class GrammarChecker:
    def __init__(self, model_path: str) -> None:
        self._model_path = model_path
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()  # one question at a time on the pipe
        self._compiled: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first

    def check(self, gbnf: str) -> None:
        """Return if `gbnf` compiles; InvalidRequest (naming `grammar`) if it does not, or crashes."""
        if gbnf in self._compiled:
            return
        with self._lock:
            verdict = self._ask(gbnf)
        if verdict == b"bad":
            raise InvalidRequest("the grammar does not parse as GBNF with a `root` rule", param="grammar")
        if verdict != b"ok":
            raise InvalidRequest(f"the grammar cannot be compiled: {verdict.decode()}", param="grammar")
        self._compiled[gbnf] = None
        while len(self._compiled) > REMEMBERED:
            self._compiled.pop(next(iter(self._compiled)))

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def _ask(self, gbnf: str) -> bytes:
        process = self._process or self._start()
        data = gbnf.encode()
        try:
            process.stdin.write(struct.pack("<Q", len(data)) + data)  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
            ready, _, _ = select.select([process.stdout], [], [], ANSWER_SECONDS)
            answer = process.stdout.readline().strip() if ready else b""  # type: ignore[union-attr]
        except BrokenPipeError:
            answer = b""
        if answer in (b"ok", b"bad"):
            return answer
        self.close()  # crashed or hung: the next grammar gets a fresh helper
        log.warning("a grammar crashed or stalled the grammar checker; refused")
        return b"it crashes or stalls llama.cpp's grammar parser"

    def _start(self) -> subprocess.Popen:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "backends.llamacpp.grammar_check", self._model_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return self._process


def serve(model_path: str) -> None:
    import faulthandler

    import llama_cpp

    faulthandler.disable()  # a crash here is an expected verdict, not a traceback for the log
    llm = llama_cpp.Llama(model_path=model_path, vocab_only=True, verbose=False)
    vocab = llm._model.vocab
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while header := source.read(8):
        gbnf = source.read(struct.unpack("<Q", header)[0])
        parsed = llama_cpp.llama_sampler_init_grammar(vocab, gbnf, b"root")
        if parsed:
            llama_cpp.llama_sampler_free(parsed)
        sink.write(b"ok\n" if parsed else b"bad\n")
        sink.flush()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    serve(sys.argv[1])
