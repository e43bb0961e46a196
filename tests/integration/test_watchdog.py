"""The watchdog and eviction wired into the manager, driven with the fake worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import AsyncIterator, Callable

import pytest

from frontend.config import ServerConfig
from frontend.errors import ServiceUnavailable, WorkerFailed
from frontend.workers.manager import ProcessManager
from frontend.workers.worker import Worker
from onebox_common.registry import ModelRegistry
from tests.integration.helpers import generate, wait_until

MiB = 1024 * 1024


def exited(worker: Worker) -> bool:
    return worker.exited


async def touch(manager: ProcessManager, name: str) -> Worker:
    async with manager.use(name) as worker:
        return worker


def loaded(manager: ProcessManager) -> list[str]:
    return sorted(w.name for w in manager.workers())


@pytest.fixture
async def make_manager(server_config: ServerConfig, spawner) -> AsyncIterator[Callable[..., ProcessManager]]:
    made: list[ProcessManager] = []

    def make(**settings: object) -> ProcessManager:
        config = dataclasses.replace(server_config, **settings)
        made.append(ProcessManager(config, ModelRegistry(config.models_path), spawner))
        return made[-1]

    yield make
    for manager in made:
        await manager.stop_all()


@contextlib.asynccontextmanager
async def watching(manager: ProcessManager) -> AsyncIterator[None]:
    task = asyncio.create_task(manager.watch())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def evictions(manager: ProcessManager, name: str, reason: str) -> float:
    return manager.metrics.evictions.labels(name, reason)._value.get()


async def test_idle_worker_is_stopped_after_its_idle_timeout(make_manager, write_model) -> None:
    manager = make_manager(watchdog_idle_timeout=0.2, watchdog_interval=0.05)
    write_model("echo")
    worker = await touch(manager, "echo")
    async with watching(manager):
        assert await wait_until(lambda: not manager.workers())
    assert await wait_until(lambda: exited(worker))
    assert evictions(manager, "echo", "idle") == 1


async def test_per_model_idle_timeout_overrides_the_servers(make_manager, write_model) -> None:
    manager = make_manager(watchdog_idle_timeout=0, watchdog_interval=0.05)
    write_model("quick", idle_timeout="200ms")
    write_model("stays")
    await touch(manager, "quick")
    await touch(manager, "stays")
    async with watching(manager):
        assert await wait_until(lambda: loaded(manager) == ["stays"])


async def test_pinned_worker_is_not_stopped_for_being_idle(make_manager, write_model) -> None:
    manager = make_manager(watchdog_idle_timeout=0.05)
    write_model("pinned", pinned=True)
    await touch(manager, "pinned")
    await asyncio.sleep(0.1)
    await manager.check()
    assert loaded(manager) == ["pinned"]


async def test_max_active_backends_one_leaves_only_the_most_recent(make_manager, write_model) -> None:
    manager = make_manager(max_active_backends=1)
    write_model("one")
    write_model("two")
    first = await touch(manager, "one")
    await touch(manager, "two")
    assert loaded(manager) == ["two"]
    assert exited(first)
    assert evictions(manager, "one", "limit") == 1


async def test_budget_that_fits_two_of_three_evicts_the_lru_one(make_manager, write_model) -> None:
    for name in ("a", "b", "c"):
        write_model(name, behaviour={"allocate_mib": 150})
    # each holds ~190 MiB once loaded (150 + the runner), a new one is predicted ~130 MiB: 2 fit, 3 not
    manager = make_manager(memory_budget_bytes=450 * MiB)
    await touch(manager, "a")
    await touch(manager, "b")
    await touch(manager, "a")  # now b is the least recently used
    assert loaded(manager) == ["a", "b"]
    await touch(manager, "c")
    assert loaded(manager) == ["a", "c"]
    assert evictions(manager, "b", "memory") == 1


async def test_pinned_worker_in_the_way_refuses_the_load(make_manager, write_model) -> None:
    manager = make_manager(max_active_backends=1)
    write_model("pinned", pinned=True)
    write_model("other")
    await touch(manager, "pinned")
    with pytest.raises(ServiceUnavailable) as caught:
        await touch(manager, "other")
    assert caught.value.code == "no_memory"
    assert loaded(manager) == ["pinned"]


async def test_busy_worker_in_the_way_gives_503_with_retry_after(make_manager, write_model) -> None:
    manager = make_manager(max_active_backends=1, busy_wait_timeout=0.3)
    write_model("busy")
    write_model("next")
    async with manager.use("busy"):
        with pytest.raises(ServiceUnavailable) as caught:
            await touch(manager, "next")
    assert caught.value.code == "workers_busy"
    assert caught.value.headers["Retry-After"] == "1"
    assert loaded(manager) == ["busy"]


async def test_load_waiting_on_a_busy_worker_proceeds_once_it_is_idle(make_manager, write_model) -> None:
    manager = make_manager(max_active_backends=1, busy_wait_timeout=10)
    write_model("busy")
    write_model("next")
    async with manager.use("busy"):
        waiting = asyncio.create_task(touch(manager, "next"))
        await asyncio.sleep(0.2)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 10)
    assert loaded(manager) == ["next"]


async def test_busy_worker_is_evicted_when_forced(make_manager, write_model) -> None:
    manager = make_manager(max_active_backends=1, force_eviction_when_busy=True)
    write_model("busy")
    write_model("next")
    async with manager.use("busy") as busy:
        await touch(manager, "next")
        assert exited(busy)
    assert loaded(manager) == ["next"]


async def test_hung_worker_is_killed_and_a_slow_one_is_not(make_manager, write_model) -> None:
    manager = make_manager(watchdog_busy_timeout=0.6, watchdog_interval=0.05)
    write_model("stuck", behaviour={"hang_after_tokens": 1})
    write_model("slow", behaviour={"token_delay": 0.25})

    async def run(name: str, prompt: str) -> str:
        async with manager.use(name) as worker:
            return await generate(worker, prompt)

    async with watching(manager):
        stuck, slow = await asyncio.gather(
            run("stuck", "one two three"), run("slow", "a b c d e f g h"), return_exceptions=True
        )
    assert isinstance(stuck, WorkerFailed)
    assert "hung" in stuck.message
    assert slow == "a b c d e f g h"
    assert loaded(manager) == ["slow"]
    assert evictions(manager, "stuck", "hung") == 1


async def test_repeated_load_failures_back_off_with_the_cause(make_manager, spawner, write_model) -> None:
    manager = make_manager(failure_backoff=30)
    write_model("broken", behaviour={"fail_on_load": "weights are corrupt"})
    for _ in range(2):
        with pytest.raises(WorkerFailed):
            await touch(manager, "broken")
    with pytest.raises(ServiceUnavailable) as caught:
        await touch(manager, "broken")
    assert caught.value.code == "model_load_backoff"
    assert "weights are corrupt" in caught.value.message
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 30
    assert spawner.count == 2


async def test_crashed_worker_is_reaped_by_the_watchdog(make_manager, write_model) -> None:
    manager = make_manager()
    write_model("echo")
    worker = await touch(manager, "echo")
    os.kill(worker.pid, signal.SIGKILL)
    await asyncio.wait_for(worker.process.wait(), 10)
    await manager.check()
    assert manager.workers() == []
    assert evictions(manager, "echo", "crashed") == 1


async def test_memory_floor_evicts_idle_workers_but_not_busy_ones(make_manager, write_model) -> None:
    manager = make_manager(memory_floor_bytes=2**62)  # far above any machine: always under the floor
    write_model("idle")
    write_model("busy")
    await touch(manager, "idle")
    async with manager.use("busy"):
        await manager.check()
        assert loaded(manager) == ["busy"]
    assert evictions(manager, "idle", "memory") == 1


async def test_worker_reports_its_resident_memory(make_manager, write_model) -> None:
    manager = make_manager()
    write_model("fat", behaviour={"allocate_mib": 64})
    worker = await touch(manager, "fat")
    manager.refresh_memory()
    assert worker.resident > 64 * MiB
    assert worker.footprint > 0
