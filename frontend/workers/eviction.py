"""Which workers to stop: pure functions over plain data, no processes, no clock, no I/O.

The manager describes each loaded worker as a `Loaded` and asks one question at a time: what must go so
that a new model fits (`plan_load`), what must go to keep the machine above its memory floor
(`plan_floor`), which workers sat idle too long (`idle_expired`), which stopped making progress (`hung`).
Idle workers go first, least recently used first; pinned workers never go; busy ones only when forced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Loaded:
    name: str
    resident_bytes: int
    last_used: float
    busy: bool = False
    pinned: bool = False
    idle_timeout: float = 0.0  # seconds; 0: never stopped for being idle
    last_progress: float = 0.0
    # True while a token stream is open. One-shot calls (an image, a transcription) report nothing until
    # they end, so silence from them is not a hang.
    streaming: bool = False


@dataclass(frozen=True)
class Limits:
    budget_bytes: int | None = None  # None: no budget
    max_active: int = 0  # 0: no limit
    force_when_busy: bool = False


@dataclass(frozen=True)
class Plan:
    evict: tuple[str, ...] = ()
    fits: bool = True  # after the evictions, the new model is within every limit
    wait: bool = False  # it would fit if busy workers were idle: wait for one, then ask again


def eviction_order(loaded: Sequence[Loaded], force_when_busy: bool = False) -> list[Loaded]:
    """Idle workers, least recently used first, then (only when forced) busy ones; never pinned ones."""
    idle = sorted((w for w in loaded if not w.pinned and not w.busy), key=lambda w: w.last_used)
    busy = sorted((w for w in loaded if not w.pinned and w.busy), key=lambda w: w.last_used)
    return idle + busy if force_when_busy else idle


def within(used: int, count: int, need: int, limits: Limits) -> bool:
    """Whether `count` workers using `used` bytes leave room for one more of `need` bytes."""
    if limits.max_active and count + 1 > limits.max_active:
        return False
    return limits.budget_bytes is None or used + need <= limits.budget_bytes


def plan_load(loaded: Sequence[Loaded], need_bytes: int, limits: Limits) -> Plan:
    """The fewest workers, in eviction order, to stop so that a new worker of `need_bytes` fits."""
    used, count = sum(w.resident_bytes for w in loaded), len(loaded)
    evict: list[str] = []
    for worker in eviction_order(loaded, limits.force_when_busy):
        if within(used, count, need_bytes, limits):
            break
        evict.append(worker.name)
        used, count = used - worker.resident_bytes, count - 1
    if within(used, count, need_bytes, limits):
        return Plan(tuple(evict))
    # Would stopping the busy workers too make room? Then it is worth waiting for one to finish.
    busy = [w for w in loaded if w.busy and not w.pinned and w.name not in evict]
    freed = sum(w.resident_bytes for w in busy)
    could_fit = bool(busy) and within(used - freed, count - len(busy), need_bytes, limits)
    return Plan(tuple(evict), fits=False, wait=could_fit)


def plan_floor(
    loaded: Sequence[Loaded], available_bytes: int, floor_bytes: int, force: bool = False
) -> list[str]:
    """Workers to stop, in eviction order, until the machine's available memory is back above the floor."""
    evict: list[str] = []
    for worker in eviction_order(loaded, force):
        if available_bytes >= floor_bytes:
            break
        evict.append(worker.name)
        available_bytes += worker.resident_bytes
    return evict


def idle_expired(loaded: Sequence[Loaded], now: float) -> list[str]:
    return [
        w.name
        for w in loaded
        if w.idle_timeout > 0 and not w.busy and not w.pinned and now - w.last_used >= w.idle_timeout
    ]


def hung(loaded: Sequence[Loaded], now: float, busy_timeout: float) -> list[str]:
    """Busy workers with no progress (no token, no reply) for `busy_timeout`; slow but steady is fine."""
    if busy_timeout <= 0:
        return []
    return [w.name for w in loaded if w.busy and w.streaming and now - w.last_progress >= busy_timeout]
