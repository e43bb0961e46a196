"""Decouple producing a stream from sending it.

gRPC's synchronous server sends a streamed message and waits for the send to complete before it asks
the handler's iterator for the next one. For token streams that wait lands between two decode steps:
every token pays a round trip through gRPC's poller thread, while llama.cpp's threads busy-wait for
the core it runs on (measured: ~10% of throughput on 2 cores). Here a producer thread runs ahead, and
each send carries everything produced since the last one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_BATCH = 256


class _End:
    pass


class _Failure(Generic[T]):
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(produce: Iterator[T], coalesce: Callable[[list[T]], T], interval: float = 0.0) -> Iterator[T]:
    """Yield what `produce` yields, computed on another thread; items that pile up are coalesced.

    With an interval, at most one item goes out per interval (the first at once), carrying all since.
    """
    items: queue.SimpleQueue[T | _End | _Failure] = queue.SimpleQueue()
    stop = threading.Event()

    def run() -> None:
        try:
            for item in produce:
                items.put(item)
                if stop.is_set():
                    break
        except BaseException as error:
            items.put(_Failure(error))
        finally:
            close = getattr(produce, "close", None)
            if close is not None:
                close()
            items.put(_End())

    producer = threading.Thread(target=run, name="stream-producer", daemon=True)
    producer.start()
    next_send = 0.0
    try:
        while True:
            batch, last = take_available(items, next_send)
            next_send = time.monotonic() + interval
            if batch:
                yield coalesce(batch)
            if isinstance(last, _Failure):
                raise last.error
            if isinstance(last, _End):
                return
    finally:
        stop.set()
        producer.join()


def take_available(items: queue.SimpleQueue, until: float) -> tuple[list, object | None]:
    """Block for one item, then take whatever else comes before `until`; stop at an end marker.

    Bounded by MAX_BATCH too: a producer faster than the consumer would otherwise never let it send.
    """
    batch: list = []
    item = items.get()
    while True:
        if isinstance(item, _End | _Failure):
            return batch, item
        batch.append(item)
        if len(batch) >= MAX_BATCH:
            return batch, None
        try:
            item = items.get(timeout=max(0.0, until - time.monotonic()))
        except queue.Empty:
            return batch, None
