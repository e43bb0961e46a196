"""Sampling parameters reach llama.cpp: each one changes what the real model writes, as it should."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import CHAT_MODEL

pytestmark = pytest.mark.e2e

PROMPT = [{"role": "user", "content": "Name an animal and describe it."}]
SEEDS = (1, 2, 3, 4)


def answers(client, **sampling: object) -> list[str]:  # type: ignore[no-untyped-def]
    replies = [
        client.chat.completions.create(
            model=CHAT_MODEL, messages=PROMPT, max_tokens=24, seed=seed, **sampling
        )
        for seed in SEEDS
    ]
    return [r.choices[0].message.content for r in replies]


def test_top_k_one_leaves_a_single_candidate_whatever_the_temperature(client) -> None:  # type: ignore[no-untyped-def]
    hot = answers(client, temperature=1.8, top_p=1.0, extra_body={"top_k": 0, "min_p": 0.0})
    assert len(set(hot)) > 1, "a hot sampler with every candidate open should differ across seeds"
    only_best = answers(client, temperature=1.8, top_p=1.0, extra_body={"top_k": 1, "min_p": 0.0})
    assert len(set(only_best)) == 1, only_best
