"""The process manager: the one owner of worker processes.

Handlers call `use(model)` and get a ready worker, held while they serve the request. The decision to
start, reuse, restart, evict, wait or refuse is made here: per model under its lock, so that concurrent
first requests start one worker, and one admission at a time under a global lock, so that two loads never
both count the same free memory. The policies are pure functions beside it: which workers to evict
(eviction.py), when to retry a model that failed to load (backoff.py), how to split the CPU threads
(cpu_share.py). The watchdog (watchdog.py) stops idle, hung and crashed workers through `evict`.
One start recipe (spawn, stream output, wait for health, load) and one stop recipe (processes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from frontend.config import ServerConfig
from frontend.errors import APIError, NotFound, ServiceUnavailable, WorkerFailed
from frontend.workers import backoff, eviction, watchdog
from frontend.workers.client import BackendClient, WorkerGone
from frontend.workers.cpu_share import thread_share
from frontend.workers.lease import Lease
from frontend.workers.memory import predict_footprint, resident_bytes
from frontend.workers.messages import LoadInfo
from frontend.workers.metrics import Metrics
from frontend.workers.processes import pump_output, spawn_worker, terminate_tree, write_threads
from frontend.workers.worker import Worker, WorkerState
from onebox_common.model_config import ModelConfig
from onebox_common.registry import ModelRegistry
from onebox_common.units import format_bytes

__all__ = ["ProcessManager", "Spawn"]

log = logging.getLogger("onebox.manager")

HEALTH_POLL_SECONDS = 0.02

Spawn = Callable[[ModelConfig, str], Awaitable[asyncio.subprocess.Process]]


class ProcessManager:
    def __init__(
        self,
        config: ServerConfig,
        registry: ModelRegistry,
        spawn: Spawn | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._config = config
        self._registry = registry
        self._spawn: Spawn = spawn or (lambda cfg, address: spawn_worker(cfg, address, config.log_level))
        self.metrics = metrics or Metrics()
        self._workers: dict[str, Worker] = {}
        self._starting: dict[str, Worker] = {}
        self._stopping: set[Worker] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._admission = asyncio.Lock()
        self._released = asyncio.Event()  # set whenever a request ends: a busy worker may now be idle
        self._measured: dict[str, int] = {}  # the largest resident size each model reached
        self._failures: dict[str, backoff.Failure] = {}
        self._ids = itertools.count(1)
        self._own_runtime_dir = config.runtime_dir is None
        self._runtime_dir = config.runtime_dir or Path(tempfile.mkdtemp(prefix="onebox-"))
        self._cpu_budget = config.threads or os.cpu_count() or 1

    @property
    def config(self) -> ServerConfig:
        return self._config

    def workers(self) -> list[Worker]:
        return list(self._workers.values())

    def starting(self) -> list[Worker]:
        return list(self._starting.values())

    def stopping(self) -> list[Worker]:
        return list(self._stopping)

    @contextlib.asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[Lease]:
        """A ready worker for `name`, counted as in flight until the block ends; a worker that goes away
        before the request sent anything is replaced once (frontend/workers/lease.py)."""
        lease = Lease(self, await self.acquire(name))
        try:
            yield lease
        except Exception:  # a worker that went away is a WorkerFailed with its cause already (Worker._call)
            self.metrics.errors.labels(name).inc()
            raise
        finally:
            lease.release()

    async def ensure_ready(self, name: str) -> Worker:
        """Start the model's worker if needed (used by --preload and POST /backend/load); does not hold it."""
        worker = await self.acquire(name)
        self.release(worker, served=False)
        return worker

    async def stop(self, name: str, reason: str = "manual") -> bool:
        async with self._lock(name):
            worker = self._workers.get(name)
            if worker is None:
                return False
            await self._evict(worker, reason)
            return True

    async def stop_all(self) -> None:
        workers, self._workers = [*self._workers.values(), *self._stopping], {}
        for worker in workers:
            worker.stop_reason = worker.stop_reason or "the server is shutting down"
        await asyncio.gather(*(self._stop(w) for w in workers), return_exceptions=True)
        if self._own_runtime_dir:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)

    # --- start / reuse ----------------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def acquire(self, name: str) -> Worker:
        config = self._registry.get(name)
        async with self._lock(name):
            worker = self._workers.get(name)
            if worker is not None and (worker.exited or worker.state is not WorkerState.READY):
                await self._evict(worker, "crashed")
                worker = None
            if worker is None:
                self._check_backoff(name)
                worker = await self._admit(config)
            worker.in_flight += 1
            worker.last_used = worker.last_progress = time.monotonic()
            self.metrics.in_flight.labels(name).inc()
            self._share_cpu()
            return worker

    def release(self, worker: Worker, served: bool) -> None:
        worker.in_flight -= 1
        worker.last_used = time.monotonic()
        self.metrics.in_flight.labels(worker.name).dec()
        if served:
            worker.served += 1
            self.metrics.requests.labels(worker.name).inc()
        self._released.set()
        self._share_cpu()

    async def _admit(self, config: ModelConfig) -> Worker:
        """Make room and start the worker, one admission at a time; wait (unlocked) while busy ones block."""
        footprint = self._measured.get(config.name) or predict_footprint(config)
        deadline = time.monotonic() + self._config.busy_wait_timeout
        while True:
            self._released.clear()
            async with self._admission:
                if await self._make_room(config.name, footprint, final=time.monotonic() >= deadline):
                    return await self._start_admitted(config, footprint)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), max(0.0, deadline - time.monotonic()))

    async def _start_admitted(self, config: ModelConfig, footprint: int) -> Worker:
        try:
            worker = await self._start(config, footprint)
        except WorkerFailed as error:
            self._record_failure(config.name, error)
            raise
        self._failures.pop(config.name, None)
        self._workers[config.name] = worker
        self.metrics.loaded.labels(config.name).set(1)
        return worker

    async def _make_room(self, name: str, need: int, final: bool) -> bool:
        """Evict idle workers, LRU first, so that `need` more bytes fit: True once they do.

        False: only busy workers are in the way, worth waiting for; past the wait (`final`), or when even
        that would not make room, a 503.
        """
        limits = eviction.Limits(
            self._config.memory_budget_bytes,
            self._config.max_active_backends,
            self._config.force_eviction_when_busy,
        )
        loaded = self.snapshot()
        plan = eviction.plan_load(loaded, need, limits)
        if not plan.fits:
            if plan.wait and not final:
                return False
            raise self._no_room(name, need, loaded, plan.wait)
        reason = "limit" if limits.max_active and len(loaded) >= limits.max_active else "memory"
        for victim in plan.evict:
            await self.evict(victim, reason)
        return True

    def _no_room(self, name: str, need: int, loaded: list[eviction.Loaded], busy: bool) -> ServiceUnavailable:
        used = sum(w.resident_bytes for w in loaded)
        budget = self._config.memory_budget_bytes
        limit = f"budget {format_bytes(budget)}" if budget is not None else "no memory budget"
        most = self._config.max_active_backends or "unlimited"
        message = (
            f"no room to load model {name!r} (needs about {format_bytes(need)}; {len(loaded)} workers use "
            f"{format_bytes(used)}; {limit}; max active backends {most})"
        )
        if busy:
            return ServiceUnavailable(
                message + ": the workers in the way are busy; try again shortly",
                code="workers_busy",
                headers={"Retry-After": str(max(1, math.ceil(self._config.busy_wait_timeout)))},
            )
        return ServiceUnavailable(f"{message}: pinned workers or its size leave no room", code="no_memory")

    def _check_backoff(self, name: str) -> None:
        failure = self._failures.get(name)
        wait = backoff.wait_left(failure, time.monotonic())
        if failure is not None and wait > 0:
            raise ServiceUnavailable(
                f"model {name!r} failed to load {failure.count} times in a row; the next try is in "
                f"{wait:.0f}s. The last failure: {failure.cause}",
                code="model_load_backoff",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    def _record_failure(self, name: str, error: WorkerFailed) -> None:
        previous = self._failures.get(name)
        self._failures[name] = backoff.record(
            previous, error.message, time.monotonic(), self._config.failure_backoff
        )

    def _share_cpu(self) -> None:
        """Split the CPU threads among the workers that are serving (cpu_share.py says why)."""
        busy = [w for w in self._workers.values() if w.in_flight > 0]
        share = thread_share(self._cpu_budget, len(busy))
        for worker in busy:
            write_threads(worker.threads_path, share)

    async def _start(self, config: ModelConfig, footprint: int = 0) -> Worker:
        if not config.path.exists():
            # the client's choice of model cannot be served as things stand, and retrying will not help: a
            # 404 like model_not_found (not a 500), with what the operator has to do
            raise NotFound(
                f"model {config.name!r} is listed but its weights are missing: {config.file!r} is not in "
                f"the models directory. If it comes from the gallery, run `onebox models install "
                f"{config.name}` (`make models` for the defaults); otherwise fix `file:` in its YAML",
                param="model",
                code="model_not_installed",
            )
        started = time.monotonic()  # spawn to ready: what the log line and the load-time metric both say
        socket_path = self._runtime_dir / f"w{next(self._ids)}.sock"
        write_threads(socket_path.with_suffix(".threads"), self._cpu_budget)
        process = await self._spawn(config, f"unix://{socket_path}")
        client = BackendClient(f"unix://{socket_path}", config.name)
        worker = Worker(config, process, client, socket_path, footprint=footprint, metrics=self.metrics)
        worker.pump = asyncio.create_task(pump_output(worker))
        log.info("starting worker for %s (pid %d)", config.name, process.pid)
        self._starting[config.name] = worker
        try:
            await self._wait_healthy(worker)
            worker.info = await self._load(worker)
        except BaseException:
            await self._stop(worker)
            raise
        finally:
            self._starting.pop(config.name, None)
        worker.state = WorkerState.READY
        self._measure(worker)
        elapsed = time.monotonic() - started
        self.metrics.load_seconds.labels(config.name).set(elapsed)
        log.info(
            "model %s loaded in %.2fs, spawn to ready (the worker's own load: %.2fs; pid %d)",
            config.name, elapsed, worker.info.load_seconds, process.pid,
        )  # fmt: skip
        return worker

    async def _wait_healthy(self, worker: Worker) -> None:
        deadline = time.monotonic() + self._config.worker_start_timeout
        while not await worker.client.healthy(timeout=0.5):
            if worker.exited:
                raise await worker.died_error("while starting")
            if time.monotonic() > deadline:
                raise WorkerFailed(
                    f"the worker for model {worker.name!r} did not answer within "
                    f"{self._config.worker_start_timeout:.0f}s of starting; the server log has its output"
                )
            await asyncio.sleep(HEALTH_POLL_SECONDS)

    async def _load(self, worker: Worker) -> LoadInfo:
        """Load the model, failing fast (with the worker's last words) if the process dies meanwhile."""
        load = asyncio.ensure_future(
            worker.client.load(
                worker.config, self._cpu_budget, str(worker.threads_path), self._config.worker_load_timeout
            )
        )
        exit_wait = asyncio.ensure_future(worker.process.wait())
        try:
            await asyncio.wait({load, exit_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exit_wait.cancel()
        if not load.done():
            load.cancel()
            raise await worker.died_error("while loading its model")
        try:
            return load.result()
        except WorkerGone:
            raise await worker.died_error("while loading its model") from None
        except APIError as error:
            log.error("loading %s failed: %s", worker.name, error.message)
            raise WorkerFailed(
                f"loading model {worker.name!r} failed: {worker.redact(error.message)} (the server log has "
                "the worker's output)"
            ) from None

    # --- memory and the watchdog ------------------------------------------------------------------

    def _measure(self, worker: Worker) -> int:
        worker.resident = resident_bytes(worker.pid) if not worker.exited else 0
        if worker.resident:
            self._measured[worker.name] = max(self._measured.get(worker.name, 0), worker.resident)
        self.metrics.resident.labels(worker.name).set(worker.resident)
        return worker.resident

    def refresh_memory(self) -> None:
        for worker in [*self._workers.values(), *self._starting.values()]:
            self._measure(worker)

    def snapshot(self) -> list[eviction.Loaded]:
        """The loaded workers as the eviction policy sees them, with fresh memory measurements."""
        self.refresh_memory()
        default_idle = self._config.watchdog_idle_timeout
        return [
            eviction.Loaded(
                name=w.name,
                resident_bytes=w.accounted_bytes,
                last_used=w.last_used,
                busy=w.in_flight > 0,
                pinned=w.config.pinned,
                idle_timeout=default_idle if w.config.idle_timeout is None else w.config.idle_timeout,
                last_progress=w.last_progress,
                streaming=w.streams > 0,
            )
            for w in self._workers.values()
        ]

    async def check(self) -> None:
        """One watchdog round (frontend/workers/watchdog.py)."""
        await watchdog.check(self)

    async def watch(self) -> None:
        """The watchdog loop, run as a task for the life of the app."""
        await watchdog.watch(self)

    # --- stop -------------------------------------------------------------------------------------

    async def evict(self, name: str, reason: str, detail: str = "") -> None:
        """Stop the loaded worker of `name`, if any; the requests it serves fail with the reason."""
        worker = self._workers.get(name)
        if worker is not None:
            await self._evict(worker, reason, detail)

    async def _evict(self, worker: Worker, reason: str, detail: str = "") -> None:
        """Stop a worker the manager chose to stop; logged once, with the reason and the memory freed."""
        if self._workers.get(worker.name) is worker:
            del self._workers[worker.name]
        freed = worker.resident if worker.exited else (self._measure(worker) or worker.resident)
        worker.stop_reason = f"{reason}: {detail}" if detail else reason
        # accounted before the stop: a watchdog cancelled mid-stop (server shutdown) still counted it
        self.metrics.loaded.labels(worker.name).set(0)
        self.metrics.resident.labels(worker.name).set(0)
        self.metrics.evictions.labels(worker.name, reason).inc()
        log.info(
            "evicting %s (pid %d), reason: %s, freeing %s",
            worker.name, worker.pid, worker.stop_reason, format_bytes(freed),
        )  # fmt: skip
        await self._stop(worker)

    async def _stop(self, worker: Worker) -> None:
        worker.state = WorkerState.STOPPING
        self._stopping.add(worker)  # until it is gone: stop_all finishes a stop that was cancelled
        await worker.client.close()
        if not worker.exited:
            await terminate_tree(worker.process, self._config.worker_stop_grace)
        self._stopping.discard(worker)
        if worker.pump is not None:
            worker.pump.cancel()
        worker.socket_path.unlink(missing_ok=True)
        worker.threads_path.unlink(missing_ok=True)
        worker.state = WorkerState.STOPPED
        log.debug("worker for %s stopped (pid %d)", worker.name, worker.pid)
