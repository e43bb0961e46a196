"""A request's hold on a model's worker, which survives the worker going away before the request said
anything.

A worker can go away under a request that had no part in it: an operator stopped it, the watchdog evicted
it, the OOM killer or an operator killed it. A request that had sent nothing to its client yet (it was
waiting for the worker, it is not streamed, or its stream had not sent text) is then served again, once, by
a fresh worker; only a second failure reaches the client. A stream that already sent text cannot be taken
back, so it ends with an error event. A crash (SIGSEGV, an exit code) is not retried: the request may be its
cause, and a retry would take the next worker down too.

Retrying is safe for everything a worker does: it reads its inputs and returns bytes; files are written by
the front end from the answer (generated images), and gallery installs never go through a worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from frontend.errors import WorkerFailed
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
from onebox_common.model_config import ModelConfig

if TYPE_CHECKING:
    from frontend.workers.manager import ProcessManager
    from frontend.workers.worker import Worker

log = logging.getLogger("onebox.manager")

T = TypeVar("T")


class Lease:
    """What a handler gets from `ProcessManager.use`: the worker's calls, with one retry on a new worker."""

    def __init__(self, manager: ProcessManager, worker: Worker) -> None:
        self._manager = manager
        self.worker = worker
        self._replacing = asyncio.Lock()

    @property
    def config(self) -> ModelConfig:
        return self.worker.config

    @property
    def name(self) -> str:
        return self.worker.name

    @property
    def info(self) -> LoadInfo | None:
        return self.worker.info

    def __getattr__(self, attribute: str) -> object:
        # what else a caller reads of the worker serving it (pid, state, ...): the current one's
        return getattr(self.worker, attribute)

    async def generate(self, generation: Generation) -> AsyncIterator[Delta]:
        spoke, retried = False, False
        while True:
            worker = self.worker
            try:
                async for delta in worker.generate(generation):
                    spoke = spoke or bool(delta.text)
                    yield delta
                return
            except WorkerFailed as error:
                if spoke or retried or not error.retryable:
                    raise
                retried = True
                await self._replace(worker, error)

    async def embed(self, inputs: list[str] | list[list[int]], truncate: bool) -> Embeddings:
        return await self._call(lambda w: w.embed(inputs, truncate))

    async def rerank(self, query: str, documents: list[str]) -> Ranking:
        return await self._call(lambda w: w.rerank(query, documents))

    async def tokenize(self, text: str, add_special: bool) -> list[int]:
        return await self._call(lambda w: w.tokenize(text, add_special))

    async def detokenize(self, tokens: list[int]) -> str:
        return await self._call(lambda w: w.detokenize(tokens))

    async def transcribe(self, job: TranscriptionJob) -> Transcription:
        return await self._call(lambda w: w.transcribe(job))

    async def synthesize(self, text: str, voice: str, speed: float, audio_format: str) -> Speech:
        return await self._call(lambda w: w.synthesize(text, voice, speed, audio_format))

    async def generate_image(self, generation: ImageGeneration) -> list[bytes]:
        return await self._call(lambda w: w.generate_image(generation))

    async def _call(self, call: Callable[[Worker], Awaitable[T]]) -> T:
        worker = self.worker
        try:
            return await call(worker)
        except WorkerFailed as error:
            if not error.retryable:
                raise
            await self._replace(worker, error)
            return await call(self.worker)

    async def _replace(self, failed: Worker, error: WorkerFailed) -> None:
        """A ready worker in place of `failed`; n choices of one request that fail together share one."""
        async with self._replacing:
            if self.worker is failed:
                log.warning("serving a request again on a new worker for %s: %s", failed.name, error.message)
                self._manager.metrics.retries.labels(failed.name).inc()
                self.worker = await self._manager.acquire(failed.name)
                self._manager.release(failed, served=False)

    def release(self) -> None:
        self._manager.release(self.worker, served=True)
