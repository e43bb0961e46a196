"""Chat and completions through the official openai client, against the real server and model."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.conftest import CHAT_MODEL, OneboxServer

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
SPECIAL_TOKENS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")


def test_models_list_names_the_default_model(client) -> None:
    ids = [m.id for m in client.models.list().data]
    assert CHAT_MODEL in ids


def test_chat_answers_with_the_model_and_counts_tokens(client) -> None:
    reply = client.chat.completions.create(model=CHAT_MODEL, messages=QUESTION, temperature=0, max_tokens=40)
    assert "Paris" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= 40
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_special_tokens_never_reach_the_output(client) -> None:
    reply = client.chat.completions.create(model=CHAT_MODEL, messages=QUESTION, temperature=0, max_tokens=30)
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model=CHAT_MODEL, messages=QUESTION, temperature=0, max_tokens=30, stream=True
        )
        if c.choices
    )
    for token in SPECIAL_TOKENS:
        assert token not in reply.choices[0].message.content
        assert token not in streamed


def test_streamed_and_plain_answers_are_identical_at_temperature_zero(client) -> None:
    kwargs = {"model": CHAT_MODEL, "messages": QUESTION, "temperature": 0, "seed": 7, "max_tokens": 48}
    plain = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    assert len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain


def test_stream_ends_with_finish_reason_and_usage_chunk(client) -> None:
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL, messages=QUESTION, max_tokens=5, stream=True,
            stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
        )
    )  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 5


def test_same_seed_gives_the_same_answer(client) -> None:
    kwargs = {"model": CHAT_MODEL, "messages": QUESTION, "temperature": 1.0, "seed": 1234, "max_tokens": 24}
    first = client.chat.completions.create(**kwargs).choices[0].message.content
    second = client.chat.completions.create(**kwargs).choices[0].message.content
    assert first == second


def test_max_tokens_truncates_with_finish_reason_length(client) -> None:
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_completion_tokens=8, extra_body={"ignore_eos": True},
    )  # fmt: skip
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 8


def test_stop_sequence_is_not_returned(client) -> None:
    kwargs = {"model": CHAT_MODEL, "messages": QUESTION, "temperature": 0, "max_tokens": 40}
    full = client.chat.completions.create(**kwargs).choices[0].message.content
    assert "Paris" in full
    cut = client.chat.completions.create(stop=["Paris"], **kwargs).choices[0]
    assert cut.message.content == full[: full.index("Paris")]
    assert cut.finish_reason == "stop"


def test_n_returns_that_many_choices(client) -> None:
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=QUESTION, n=3, seed=5, temperature=1.0, max_tokens=12
    )
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert all(c.message.content for c in reply.choices)


def test_streamed_n_choices_each_finish(client) -> None:
    stream = client.chat.completions.create(
        model=CHAT_MODEL, messages=QUESTION, n=2, seed=5, max_tokens=6, stream=True
    )
    finished = {c.choices[0].index for c in stream if c.choices and c.choices[0].finish_reason}
    assert finished == {0, 1}


def test_completions_continue_the_prompt(client) -> None:
    reply = client.completions.create(
        model=CHAT_MODEL, prompt="The capital of France is", temperature=0, max_tokens=8, user="someone"
    )
    assert "Paris" in reply.choices[0].text
    assert reply.object == "text_completion"
    assert reply.usage.prompt_tokens == 5


def test_completions_stream(client) -> None:
    chunks = list(
        client.completions.create(
            model=CHAT_MODEL, prompt="The capital of France is", temperature=0, max_tokens=8, stream=True
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert "Paris" in text
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}


def test_sampling_parameters_are_accepted(client) -> None:
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=QUESTION, max_tokens=8, temperature=0.5, top_p=0.9,
        presence_penalty=0.5, frequency_penalty=0.5, extra_body={"top_k": 20, "min_p": 0.1},
    )  # fmt: skip
    assert reply.choices[0].message.content


def test_system_and_multi_turn_messages_render(client) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "developer", "content": "Answer in one word."},
        {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
    ]
    reply = client.chat.completions.create(model=CHAT_MODEL, messages=messages, temperature=0, max_tokens=10)
    assert reply.choices[0].message.content


def test_raw_sse_format(server: OneboxServer) -> None:
    body = {"model": CHAT_MODEL, "messages": QUESTION, "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"
