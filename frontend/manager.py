"""The process manager: the one owner of worker processes.

Handlers call `use(model)` and get a ready worker, held while they serve the request. The decision to
start, reuse, restart or wait is made here, under a per-model lock, so that concurrent first requests start
one worker. One start recipe (spawn, stream output, wait for health, load) and one stop recipe (SIGTERM,
grace, SIGKILL of the whole tree).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from frontend.backend_client import BackendClient, Delta, Generation, LoadInfo, WorkerGone
from frontend.config import ModelConfig, ModelRegistry, ServerConfig
from frontend.errors import APIError, WorkerFailed

log = logging.getLogger("onebox.manager")

OUTPUT_TAIL_LINES = 40
OUTPUT_LINE_LIMIT = 1024 * 1024
HEALTH_POLL_SECONDS = 0.02
EXIT_SETTLE_SECONDS = 2.0

Spawn = Callable[[ModelConfig, str], Awaitable[asyncio.subprocess.Process]]


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
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_TAIL_LINES))
    started_at: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    served: int = 0
    info: LoadInfo | None = None
    pump: asyncio.Task | None = None

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

    def last_output(self) -> str:
        return "\n".join(self.output) or "(the worker printed nothing)"

    async def generate(self, generation: Generation) -> AsyncIterator[Delta]:
        """The client's stream, with a dead worker reported by its cause (exit status, last output)."""
        try:
            async for delta in self.client.generate(generation):
                yield delta
        except WorkerGone as gone:
            raise await self.gone_error(gone) from None

    async def died_error(self, when: str) -> WorkerFailed:
        await self.settle()
        status = describe_exit(self.process.returncode)
        return WorkerFailed(
            f"the worker for model {self.name!r} exited {when} ({status}); last output:\n{self.last_output()}"
        )

    async def gone_error(self, gone: WorkerGone) -> WorkerFailed:
        await self.settle()
        if self.exited:
            log.error("worker for %s died: %s", self.name, describe_exit(self.process.returncode))
            return await self.died_error("while serving a request")
        return WorkerFailed(f"the worker for model {self.name!r} stopped answering: {gone}")

    async def settle(self) -> None:
        """Give a dying process a moment to exit and its last output to arrive."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), EXIT_SETTLE_SECONDS)
        if self.exited and self.pump is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.pump), 1.0)


async def spawn_worker(
    config: ModelConfig, address: str, log_level: str = "INFO"
) -> asyncio.subprocess.Process:
    """Start a worker process; its command line names the model so `ps` tells workers apart."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backends.runner",
        "--model", config.name, "--backend", config.backend, "--address", address,
        "--parent-pid", str(os.getpid()), "--log-level", log_level,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        limit=OUTPUT_LINE_LIMIT,
        # Its own session: a Ctrl-C in the terminal reaches the server, which then stops workers in order.
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


class ProcessManager:
    def __init__(self, config: ServerConfig, registry: ModelRegistry, spawn: Spawn | None = None) -> None:
        self._config = config
        self._registry = registry
        self._spawn: Spawn = spawn or (lambda cfg, address: spawn_worker(cfg, address, config.log_level))
        self._workers: dict[str, Worker] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._ids = itertools.count(1)
        self._own_runtime_dir = config.runtime_dir is None
        self._runtime_dir = config.runtime_dir or Path(tempfile.mkdtemp(prefix="onebox-"))
        self._cpu_budget = config.threads or os.cpu_count() or 1

    def workers(self) -> list[Worker]:
        return list(self._workers.values())

    @contextlib.asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[Worker]:
        """A ready worker for `name`, counted as in flight until the block ends."""
        worker = await self._acquire(name)
        try:
            yield worker
        except WorkerGone as gone:
            raise await worker.gone_error(gone) from None
        finally:
            worker.in_flight -= 1
            worker.served += 1
            worker.last_used = time.monotonic()
            self._share_cpu()

    async def ensure_ready(self, name: str) -> Worker:
        """Start the model's worker if needed (used by --preload); does not hold it."""
        async with self.use(name) as worker:
            return worker

    async def stop(self, name: str) -> bool:
        async with self._lock(name):
            worker = self._workers.pop(name, None)
            if worker is None:
                return False
            await self._stop(worker)
            return True

    async def stop_all(self) -> None:
        workers, self._workers = list(self._workers.values()), {}
        await asyncio.gather(*(self._stop(w) for w in workers), return_exceptions=True)
        if self._own_runtime_dir:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)

    # --- start / reuse ----------------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _acquire(self, name: str) -> Worker:
        config = self._registry.get(name)
        async with self._lock(name):
            worker = self._workers.get(name)
            if worker is not None and (worker.exited or worker.state is not WorkerState.READY):
                self._workers.pop(name)
                await self._stop(worker)
                worker = None
            if worker is None:
                worker = await self._start(config)
                self._workers[name] = worker
            worker.in_flight += 1
            worker.last_used = time.monotonic()
            self._share_cpu()
            return worker

    def _share_cpu(self) -> None:
        """Split the CPU threads among the workers that are serving.

        llama.cpp's threads busy-wait at every barrier, so two workers that each take every core do not
        share the CPU, they fight for it (a token costs a scheduler tick per barrier): ten times slower
        here. Each busy worker gets an equal share; an idle one keeps its last share until it is busy.
        """
        busy = [w for w in self._workers.values() if w.in_flight > 0]
        share = max(1, self._cpu_budget // max(1, len(busy)))
        for worker in busy:
            write_threads(worker.threads_path, share)

    async def _start(self, config: ModelConfig) -> Worker:
        if not config.path.exists():
            raise WorkerFailed(
                f"model {config.name!r}: its weights are not installed (expected {config.file} in the models "
                "directory); run `make models` or install it from the gallery",
                code="model_not_installed",
            )
        socket_path = self._runtime_dir / f"w{next(self._ids)}.sock"
        write_threads(socket_path.with_suffix(".threads"), self._cpu_budget)
        process = await self._spawn(config, f"unix://{socket_path}")
        worker = Worker(config, process, BackendClient(f"unix://{socket_path}", config.name), socket_path)
        worker.pump = asyncio.create_task(pump_output(worker))
        log.info("starting worker for %s (pid %d)", config.name, process.pid)
        try:
            await self._wait_healthy(worker)
            worker.info = await self._load(worker)
        except BaseException:
            await self._stop(worker)
            raise
        worker.state = WorkerState.READY
        log.info("model %s loaded in %.2fs (pid %d)", config.name, worker.info.load_seconds, process.pid)
        return worker

    async def _wait_healthy(self, worker: Worker) -> None:
        deadline = time.monotonic() + self._config.worker_start_timeout
        while not await worker.client.healthy(timeout=0.5):
            if worker.exited:
                raise await worker.died_error("while starting")
            if time.monotonic() > deadline:
                raise WorkerFailed(
                    f"the worker for model {worker.name!r} did not answer within "
                    f"{self._config.worker_start_timeout:.0f}s of starting; "
                    f"last output:\n{worker.last_output()}"
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
            raise WorkerFailed(
                f"loading model {worker.name!r} failed: {error.message}; last output:\n{worker.last_output()}"
            ) from None

    # --- stop -------------------------------------------------------------------------------------

    async def _stop(self, worker: Worker) -> None:
        worker.state = WorkerState.STOPPING
        await worker.client.close()
        if not worker.exited:
            await terminate_tree(worker.process, self._config.worker_stop_grace)
        if worker.pump is not None:
            worker.pump.cancel()
        worker.socket_path.unlink(missing_ok=True)
        worker.threads_path.unlink(missing_ok=True)
        worker.state = WorkerState.STOPPED
        log.info("worker for %s stopped (pid %d)", worker.name, worker.pid)


def write_threads(path: Path, threads: int) -> None:
    # rewritten in place (never truncated) so that a worker reading it mid-write sees a whole number
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, b"%08d" % threads, 0)
    finally:
        os.close(fd)


async def terminate_tree(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM, a grace period, then SIGKILL for the process and everything it started.

    Workers lead their own process group (start_new_session), so signalling the group reaches children
    started at any time; children that linger would otherwise hold the output pipe, and asyncio's
    wait() returns only once that pipe closes.
    """
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    signal_group(process, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        signal_group(process, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        await process.wait()


def signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signum)
            return
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)


async def pump_output(worker: Worker) -> None:
    """Stream a worker's output to a per-model logger, keeping the last lines for error messages."""
    stream = worker.process.stdout
    if stream is None:
        return
    logger = logging.getLogger(f"onebox.worker.{worker.name}")
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line over the limit: asyncio drops it; say so and keep reading
            line = b"[an output line longer than %d bytes was dropped]" % OUTPUT_LINE_LIMIT
        if not line:
            return
        text = line.decode(errors="replace").rstrip()
        worker.output.append(text)
        logger.info("%s", text)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
