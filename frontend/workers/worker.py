"""A worker process as the manager sees it: its state, its client, its output, and what it costs.

Created and stopped only by frontend/workers/manager.py; handlers get one from `ProcessManager.use` and call
its RPC methods (`generate`, `embed`, ...), never its client. A worker that goes away during a call, for
whatever cause (it crashed, the watchdog killed it as hung, it was evicted, an operator stopped it, its
connection was lost), surfaces here and only here, from inside the call, as a WorkerFailed naming the
cause: a stream that already started can still end with an error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from frontend.errors import InvalidRequest, WorkerFailed
from frontend.workers.client import BackendClient, WorkerGone
from frontend.workers.messages import (
    Delta,
    Embeddings,
    Generation,
    ImageGeneration,
    LoadInfo,
    Ranking,
    Speech,
    Transcription,
    TranscriptionJob,
)
from frontend.workers.metrics import Metrics
from frontend.workers.processes import describe_exit
from onebox_common.model_config import ModelConfig

log = logging.getLogger("onebox.manager")

# Stops the manager made for reasons of its own (an operator, eviction for room or idleness); a hung kill
# and a server shutdown are not retried: the request may be the cause, or there is nowhere to go.
RETRYABLE_STOPS = frozenset({"manual", "memory", "limit", "idle"})
KILLED_FROM_OUTSIDE = frozenset({-signal.SIGKILL, -signal.SIGTERM})
# An absolute path in a message: not after a word character, a dot or a slash (relative paths, URLs).
ABSOLUTE_PATH = re.compile(r"(?<![\w./])/(?:[\w.@+-]+/)*[\w.@+-]+")

EXIT_SETTLE_SECONDS = 2.0


class WorkerState(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(eq=False)
class Worker:
    config: ModelConfig
    process: asyncio.subprocess.Process
    client: BackendClient
    socket_path: Path
    state: WorkerState = WorkerState.STARTING
    started_at: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    last_progress: float = field(default_factory=time.monotonic)  # last token or reply: hung detection
    in_flight: int = 0
    streams: int = 0  # token streams open: the only requests that report progress as they go
    served: int = 0
    info: LoadInfo | None = None
    pump: asyncio.Task | None = None
    footprint: int = 0  # predicted bytes, before it loaded
    resident: int = 0  # last measured bytes (the worker and its children)
    stop_reason: str | None = None  # why the manager stopped it, for the requests it was serving
    metrics: Metrics | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    @property
    def threads_path(self) -> Path:
        return self.socket_path.with_suffix(".threads")

    @property
    def accounted_bytes(self) -> int:
        # a fresh llama.cpp worker has not touched all its mmap'd weights yet: count the prediction until then
        return max(self.resident, self.footprint)

    async def generate(self, generation: Generation) -> AsyncIterator[Delta]:
        """The model's text, a few tokens at a time; counts progress (for the watchdog) and tokens."""
        self._check_chat(generation)
        started, first = time.monotonic(), True
        # labels() is a locked dict lookup: once per stream, not once per delta on the hot path
        metrics = self.metrics
        tokens = metrics.tokens.labels(self.name) if metrics is not None else None
        self.streams += 1
        try:
            async with self._call():
                async for delta in self.client.generate(generation):
                    self.last_progress = time.monotonic()
                    if metrics is not None and tokens is not None:
                        if first:
                            metrics.ttft.labels(self.name).observe(self.last_progress - started)
                        tokens.inc(delta.tokens)
                    first = False
                    yield delta
        finally:
            self.streams -= 1

    async def embed(self, inputs: list[str] | list[list[int]], truncate: bool) -> Embeddings:
        async with self._call():
            return await self.client.embed(inputs, truncate)

    async def rerank(self, query: str, documents: list[str]) -> Ranking:
        async with self._call():
            return await self.client.rerank(query, documents)

    async def tokenize(self, text: str, add_special: bool) -> list[int]:
        async with self._call():
            return await self.client.tokenize(text, add_special)

    async def detokenize(self, tokens: list[int]) -> str:
        async with self._call():
            return await self.client.detokenize(tokens)

    async def transcribe(self, job: TranscriptionJob) -> Transcription:
        async with self._call():
            return await self.client.transcribe(job)

    async def synthesize(self, text: str, voice: str, speed: float, audio_format: str) -> Speech:
        async with self._call():
            return await self.client.synthesize(text, voice, speed, audio_format)

    async def generate_image(self, generation: ImageGeneration) -> list[bytes]:
        async with self._call():
            return await self.client.generate_image(generation)

    @contextlib.asynccontextmanager
    async def _call(self) -> AsyncIterator[None]:
        """The one place a gone worker becomes an APIError: a WorkerFailed with the cause."""
        try:
            yield
        except WorkerGone as gone:
            raise await self.gone_error(gone) from None
        except WorkerFailed as failed:  # the worker's own words may name server files
            failed.message = self.redact(failed.message)
            raise

    def redact(self, text: str) -> str:
        """A worker's message as a client may see it: the weights named as in the YAML, no other paths
        (sockets, upload and temp folders are the server's business; the log keeps them)."""
        return ABSOLUTE_PATH.sub("<path>", text.replace(str(self.config.path), self.config.file))

    def _check_chat(self, generation: Generation) -> None:
        """Refuse a conversation to a model that cannot render one, before it reaches the worker."""
        if isinstance(generation.prompt, str) or self.info is None or self.info.has_chat_template:
            return
        raise InvalidRequest(
            f"model {self.name!r} has no chat template (none in its weights or its YAML), so it cannot serve "
            "chat; use /v1/completions, or set `template.chat` in the model's YAML",
            param="model",
        )

    async def died_error(self, when: str) -> WorkerFailed:
        """The exit as the client hears it; what the worker printed stays in the server log, where each line
        already went as it came (it can hold other requests' text and server paths)."""
        await self.settle()
        status = describe_exit(self.process.returncode)
        log.error("worker for %s exited %s (%s); its output is logged above", self.name, when, status)
        error = WorkerFailed(
            f"the worker for model {self.name!r} exited {when} ({status}); the server log has the details"
        )
        # killed from outside (the OOM killer, an operator): not this request's doing; a crash may be
        error.retryable = self.process.returncode in KILLED_FROM_OUTSIDE
        return error

    async def gone_error(self, gone: WorkerGone) -> WorkerFailed:
        reason = self.stop_reason
        if reason is not None and reason != "crashed":  # "crashed": the watchdog reaped an exit, below
            error = WorkerFailed(f"the worker for model {self.name!r} was stopped: {reason}")
            error.retryable = reason.partition(":")[0] in RETRYABLE_STOPS
            return error
        await self.settle()
        if self.exited:
            return await self.died_error("while serving a request")
        log.error("worker for %s stopped answering: %s", self.name, gone)
        return WorkerFailed(f"the worker for model {self.name!r} stopped answering: {self.redact(str(gone))}")

    async def settle(self) -> None:
        """Give a dying process a moment to exit and its last output to arrive."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), EXIT_SETTLE_SECONDS)
        if self.exited and self.pump is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.pump), 1.0)
