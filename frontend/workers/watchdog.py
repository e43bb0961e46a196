"""The watchdog: a round every few seconds that stops the workers which should not be running.

It reaps crashed workers, kills hung ones (a token stream with no progress for the busy timeout), stops
those idle past their timeout, and keeps the machine above its memory floor. Which ones is decided by the
pure functions of frontend/workers/eviction.py; stopping them is the manager's (`ProcessManager.evict`),
which tells the requests they were serving why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from frontend.workers import eviction
from frontend.workers.memory import system_memory
from onebox_common.units import format_bytes

if TYPE_CHECKING:
    from frontend.workers.manager import ProcessManager

log = logging.getLogger("onebox.manager")


async def check(manager: ProcessManager) -> None:
    """One round: reap crashed workers, stop hung and idle ones, defend the memory floor."""
    config = manager.config
    for worker in [w for w in manager.workers() if w.exited]:
        await manager.evict(worker.name, "crashed")
    now, loaded = time.monotonic(), manager.snapshot()
    busy_timeout = config.watchdog_busy_timeout
    for name in eviction.hung(loaded, now, busy_timeout):
        await manager.evict(name, "hung", f"no progress for {busy_timeout:.0f}s")
    for name in eviction.idle_expired(loaded, now):
        await manager.evict(name, "idle")
    if config.memory_floor_bytes:
        _, available = system_memory()
        floor, force = config.memory_floor_bytes, config.force_eviction_when_busy
        for name in eviction.plan_floor(manager.snapshot(), available, floor, force):
            await manager.evict(name, "memory", f"available memory below {format_bytes(floor)}")


async def watch(manager: ProcessManager) -> None:
    """The watchdog loop, run as a task for the life of the app; a failed round is logged, not fatal."""
    while True:
        await asyncio.sleep(manager.config.watchdog_interval)
        try:
            await check(manager)
        except Exception:
            log.exception("watchdog round failed")
