"""When to try loading a model again after it failed: pure arithmetic over plain values, no clock, no I/O.

The first failure is retried at once (it may have been a fluke); repeated ones back off, doubling from the
server's `failure_backoff` up to MAX_BACKOFF_SECONDS, so that a model that cannot load does not spin up a
worker for every request. A success forgets the failures (the manager drops the record).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BACKOFF_SECONDS = 300.0
_MAX_DOUBLINGS = 32  # far past MAX_BACKOFF_SECONDS already; keeps 2**n a small number


@dataclass(frozen=True)
class Failure:
    count: int  # failures in a row
    until: float  # the clock reading (time.monotonic) before which no new try is made
    cause: str  # the last failure's message, repeated to the clients refused meanwhile


def pause(count: int, base: float) -> float:
    """Seconds to wait after the `count`-th failure in a row, with `base` seconds after the second."""
    if count < 2:
        return 0.0
    return min(MAX_BACKOFF_SECONDS, base * 2 ** min(count - 2, _MAX_DOUBLINGS))


def record(previous: Failure | None, cause: str, now: float, base: float) -> Failure:
    """The record after one more failure at `now`."""
    count = previous.count + 1 if previous is not None else 1
    return Failure(count, now + pause(count, base), cause)


def wait_left(failure: Failure | None, now: float) -> float:
    """Seconds until the next try is allowed; 0 when it is allowed now."""
    return max(0.0, failure.until - now) if failure is not None else 0.0
