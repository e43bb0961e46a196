"""Fixtures for the integration tier: a spawn that starts the fake worker, and a manager using it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from frontend.config import ServerConfig
from frontend.workers.manager import ProcessManager
from onebox_common.model_config import ModelConfig
from onebox_common.registry import ModelRegistry

FAKE_WORKER = Path(__file__).resolve().parents[1] / "fakes" / "fake_worker.py"


class FakeSpawner:
    """A ProcessManager spawn that starts tests/fakes/fake_worker.py the way spawn_worker starts workers."""

    def __init__(self) -> None:
        self.processes: list[asyncio.subprocess.Process] = []

    @property
    def count(self) -> int:
        return len(self.processes)

    async def __call__(self, config: ModelConfig, address: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(FAKE_WORKER),
            "--model", config.name, "--backend", "fake", "--address", address,
            "--parent-pid", str(os.getpid()), "--log-level", "INFO",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.processes.append(process)
        await listening(process, address.removeprefix("unix://"))
        return process


async def listening(process: asyncio.subprocess.Process, socket_path: str, timeout: float = 10.0) -> None:
    """Return once the worker's socket exists (or it exited), so the manager's first health check succeeds.

    Without this, the manager's first check fails before the socket exists, and gRPC's reconnect backoff
    (about 1 s) delays every start; the tier would spend most of its time waiting on it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not os.path.exists(socket_path) and process.returncode is None and loop.time() < deadline:
        await asyncio.sleep(0.01)


@pytest.fixture
def spawner() -> Iterator[FakeSpawner]:
    spawner = FakeSpawner()
    yield spawner
    # A safety net for a failed test: nothing this tier started outlives it.
    for process in spawner.processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
        with contextlib.suppress(ProcessLookupError):
            process.kill()


@pytest.fixture
def server_config(models_path: Path) -> ServerConfig:
    return ServerConfig(
        models_path=models_path, worker_start_timeout=15, worker_load_timeout=15, worker_stop_grace=1
    )


@pytest.fixture
async def manager(server_config: ServerConfig, spawner: FakeSpawner) -> AsyncIterator[ProcessManager]:
    manager = ProcessManager(server_config, ModelRegistry(server_config.models_path), spawner)
    yield manager
    await manager.stop_all()
