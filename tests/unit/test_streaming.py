"""backends/streaming.py: a producer thread runs ahead; what piles up goes out as one item."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from backends.llamacpp.model import coalesce
from backends.streaming import prefetched
from onebox_proto import backend_pb2 as pb


def joined(items: list[str]) -> str:
    return "".join(items)


def test_every_item_arrives_in_order() -> None:
    assert "".join(prefetched(iter("abcdef"), joined)) == "abcdef"


def test_items_within_the_interval_are_sent_together() -> None:
    def slow() -> Iterator[str]:
        for letter in "abcdefgh":
            time.sleep(0.01)
            yield letter

    sent = list(prefetched(slow(), joined, interval=0.05))
    assert "".join(sent) == "abcdefgh"
    assert sent[0] == "a"  # the first goes at once
    assert len(sent) < 8


def test_a_producer_error_reaches_the_consumer_after_what_came_before() -> None:
    def failing() -> Iterator[str]:
        yield "a"
        raise ValueError("boom")

    received = []
    with pytest.raises(ValueError, match="boom"):
        for item in prefetched(failing(), joined):
            received.append(item)
    assert received == ["a"]


def test_stopping_early_stops_the_producer() -> None:
    closed = threading.Event()

    def endless() -> Iterator[str]:
        try:
            while True:
                yield "x"
        finally:
            closed.set()

    stream = prefetched(endless(), joined)
    next(stream)
    stream.close()
    assert closed.wait(5)


def test_coalesced_generation_messages_keep_text_tokens_and_totals() -> None:
    replies = [
        pb.GenerateResponse(text="Hel", tokens=1),
        pb.GenerateResponse(text="lo", tokens=2),
        pb.GenerateResponse(text="!", tokens=1, finish_reason=pb.FINISH_REASON_STOP, completion_tokens=4),
    ]
    merged = coalesce(replies)
    assert (merged.text, merged.tokens) == ("Hello!", 4)
    assert merged.finish_reason == pb.FINISH_REASON_STOP
    assert merged.completion_tokens == 4
