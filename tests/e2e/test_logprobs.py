"""Log-probabilities on chat and completions, computed by the worker from the model's logits."""

from __future__ import annotations

import math

import pytest

from tests.e2e.conftest import CHAT_MODEL

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_chat_logprobs_are_probabilities_with_the_requested_alternatives(client) -> None:
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=QUESTION, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3
    )
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    assert "".join(e.token for e in content) == reply.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        assert [t.logprob for t in entry.top_logprobs] == sorted(
            (t.logprob for t in entry.top_logprobs), reverse=True
        )
        # at temperature 0 the sampled token is the likeliest one
        assert entry.token == entry.top_logprobs[0].token
        assert math.isclose(entry.logprob, entry.top_logprobs[0].logprob)
        assert bytes(entry.bytes).decode() == entry.token


def test_chat_logprobs_without_alternatives(client) -> None:
    reply = client.chat.completions.create(model=CHAT_MODEL, messages=QUESTION, max_tokens=4, logprobs=True)
    assert all(e.logprob <= 0 and e.top_logprobs == [] for e in reply.choices[0].logprobs.content)


def test_no_logprobs_unless_asked(client) -> None:
    reply = client.chat.completions.create(model=CHAT_MODEL, messages=QUESTION, max_tokens=4)
    assert reply.choices[0].logprobs is None


def test_streamed_chat_logprobs_cover_every_token(client) -> None:
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL, messages=QUESTION, max_tokens=8, logprobs=True, top_logprobs=2, stream=True,
            stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
        )
    )  # fmt: skip
    entries = [
        e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content
    ]
    assert len(entries) == chunks[-1].usage.completion_tokens == 8
    assert all(e.logprob <= 0 and len(e.top_logprobs) == 2 for e in entries)


def test_top_logprobs_above_20_is_refused(client) -> None:
    import openai

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=CHAT_MODEL, messages=QUESTION, max_tokens=2, logprobs=True, top_logprobs=21
        )


def test_completion_logprobs(client) -> None:
    reply = client.completions.create(
        model=CHAT_MODEL, prompt="The capital of France is", max_tokens=5, temperature=0, logprobs=2
    )
    logprobs = reply.choices[0].logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == reply.usage.completion_tokens
    assert all(lp <= 0 for lp in logprobs.token_logprobs)
    assert all(len(top) <= 2 and top for top in logprobs.top_logprobs)
    assert "".join(logprobs.tokens) == reply.choices[0].text
