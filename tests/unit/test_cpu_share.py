"""frontend/workers/cpu_share.py: each serving worker's share of the CPU threads, with literal inputs."""

from __future__ import annotations

import pytest

from frontend.workers.cpu_share import thread_share


@pytest.mark.parametrize(
    ("budget", "busy", "share"),
    [(8, 0, 8), (8, 1, 8), (8, 2, 4), (8, 3, 2), (2, 2, 1), (2, 5, 1), (1, 1, 1)],
)
def test_busy_workers_split_the_budget_with_at_least_one_thread_each(
    budget: int, busy: int, share: int
) -> None:
    assert thread_share(budget, busy) == share
