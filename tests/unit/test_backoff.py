"""frontend/workers/backoff.py: when a model that failed to load is tried again, with literal inputs."""

from __future__ import annotations

import pytest

from frontend.workers.backoff import MAX_BACKOFF_SECONDS, Failure, pause, record, wait_left


@pytest.mark.parametrize(
    ("count", "seconds"),
    [(1, 0.0), (2, 30.0), (3, 60.0), (4, 120.0), (5, 240.0), (6, MAX_BACKOFF_SECONDS),
     (10_000, MAX_BACKOFF_SECONDS)],
)  # fmt: skip
def test_pause_doubles_from_the_second_failure_up_to_the_cap(count: int, seconds: float) -> None:
    assert pause(count, base=30.0) == seconds


def test_first_failure_is_retried_at_once() -> None:
    assert record(None, "corrupt", now=100.0, base=30.0) == Failure(1, 100.0, "corrupt")


def test_next_failure_counts_on_and_keeps_the_latest_cause() -> None:
    previous = Failure(1, 100.0, "weights are corrupt")
    assert record(previous, "out of memory", now=105.0, base=30.0) == Failure(2, 135.0, "out of memory")


def test_no_record_means_no_wait() -> None:
    assert wait_left(None, now=100.0) == 0.0


def test_wait_left_counts_down_to_zero() -> None:
    failure = Failure(2, 135.0, "weights are corrupt")
    assert wait_left(failure, now=105.0) == 30.0
    assert wait_left(failure, now=135.0) == 0.0
    assert wait_left(failure, now=200.0) == 0.0
