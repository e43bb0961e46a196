"""frontend/workers/eviction.py: the eviction policy, with literal inputs."""

from __future__ import annotations

import pytest

from frontend.workers.eviction import Limits, Loaded, Plan, hung, idle_expired, plan_floor, plan_load
from onebox_common.units import parse_duration, parse_size

GiB = 1024**3


def w(name: str, gib: float = 1, used: float = 0, **kw: object) -> Loaded:
    return Loaded(name=name, resident_bytes=int(gib * GiB), last_used=used, **kw)


def test_load_that_fits_evicts_nothing() -> None:
    assert plan_load([w("a"), w("b")], GiB, Limits(budget_bytes=3 * GiB)) == Plan()


def test_no_limits_evict_nothing() -> None:
    assert plan_load([w("a", 100), w("b", 100)], 100 * GiB, Limits()) == Plan()


def test_over_budget_evicts_least_recently_used_first() -> None:
    loaded = [w("new", used=30), w("old", used=10), w("mid", used=20)]
    assert plan_load(loaded, GiB, Limits(budget_bytes=3 * GiB)).evict == ("old",)


def test_evicts_as_many_as_the_budget_needs_in_lru_order() -> None:
    loaded = [w("a", used=3), w("b", used=1), w("c", used=2)]
    assert plan_load(loaded, 2 * GiB, Limits(budget_bytes=3 * GiB)).evict == ("b", "c")


def test_budget_arithmetic_counts_the_new_models_footprint_exactly() -> None:
    loaded = [w("a", 2), w("b", 1, used=1)]
    assert plan_load(loaded, 1 * GiB, Limits(budget_bytes=4 * GiB)) == Plan()
    assert plan_load(loaded, 1 * GiB + 1, Limits(budget_bytes=4 * GiB)).evict == ("a",)


def test_pinned_worker_is_never_evicted() -> None:
    loaded = [w("pinned", used=1, pinned=True), w("other", used=2)]
    assert plan_load(loaded, GiB, Limits(budget_bytes=2 * GiB)).evict == ("other",)


def test_only_pinned_workers_left_means_it_cannot_fit() -> None:
    plan = plan_load([w("pinned", 2, pinned=True)], GiB, Limits(budget_bytes=2 * GiB))
    assert plan == Plan(fits=False, wait=False)


def test_busy_worker_is_not_evicted_and_the_load_waits() -> None:
    loaded = [w("busy", used=1, busy=True), w("idle", used=2)]
    plan = plan_load(loaded, 3 * GiB, Limits(budget_bytes=3 * GiB))
    assert plan == Plan(evict=("idle",), fits=False, wait=True)


def test_busy_worker_is_evicted_when_forced() -> None:
    loaded = [w("busy", used=1, busy=True), w("idle", used=2)]
    plan = plan_load(loaded, 3 * GiB, Limits(budget_bytes=3 * GiB, force_when_busy=True))
    assert plan == Plan(evict=("idle", "busy"))


def test_model_larger_than_the_budget_does_not_wait() -> None:
    plan = plan_load([w("busy", busy=True)], 10 * GiB, Limits(budget_bytes=4 * GiB))
    assert plan.fits is False and plan.wait is False


def test_max_active_keeps_only_the_most_recent() -> None:
    loaded = [w("a", used=1), w("b", used=3), w("c", used=2)]
    assert plan_load(loaded, 0, Limits(max_active=1)).evict == ("a", "c", "b")
    assert plan_load(loaded, 0, Limits(max_active=3)).evict == ("a",)


def test_memory_floor_evicts_idle_lru_until_above_it() -> None:
    loaded = [w("a", 1, used=3), w("b", 1, used=1), w("c", 1, used=2), w("busy", 5, used=0, busy=True)]
    assert plan_floor(loaded, available_bytes=GiB // 2, floor_bytes=2 * GiB) == ["b", "c"]
    assert plan_floor(loaded, available_bytes=3 * GiB, floor_bytes=2 * GiB) == []


def test_idle_timeout_expires_only_idle_unpinned_workers_past_their_timeout() -> None:
    loaded = [
        w("stale", used=0, idle_timeout=10),
        w("fresh", used=95, idle_timeout=10),
        w("never", used=0, idle_timeout=0),
        w("pinned", used=0, idle_timeout=10, pinned=True),
        w("busy", used=0, idle_timeout=10, busy=True),
    ]
    assert idle_expired(loaded, now=100) == ["stale"]


def test_hung_is_busy_without_progress_for_the_timeout() -> None:
    loaded = [
        w("stuck", busy=True, streaming=True, last_progress=0),
        w("slow", busy=True, streaming=True, last_progress=90),
        w("idle", busy=False, last_progress=0),
    ]
    assert hung(loaded, now=100, busy_timeout=60) == ["stuck"]
    assert hung(loaded, now=100, busy_timeout=0) == []


def test_a_long_one_shot_call_is_not_hung() -> None:
    # an image or a transcription reports nothing until it is done: silence is not a hang
    loaded = [w("painting", busy=True, streaming=False, last_progress=0)]
    assert hung(loaded, now=1000, busy_timeout=60) == []


@pytest.mark.parametrize(
    ("text", "size"),
    [("12GiB", 12 * GiB), ("512MB", 512 * 1000**2), ("1000", 1000), ("80%", 800), ("1.5KiB", 1536)],
)
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text, total=1000) == size


@pytest.mark.parametrize(("text", "seconds"), [("15m", 900), ("30s", 30), ("0", 0), ("1h", 3600), (2.5, 2.5)])
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["lots", "-5s", "12 parsecs"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
