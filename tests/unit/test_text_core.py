"""The generation core and its renderers, fed fake deltas and events: no worker process, no model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import pytest

from frontend.api.parsing import parse
from frontend.api.text.chat import ChatCompletionRequest
from frontend.api.text.completions import CompletionRequest
from frontend.api.text.core import (
    Event,
    Events,
    Finish,
    TextDelta,
    ToolCallArguments,
    ToolCallStart,
    Usage,
    collect,
    generate,
)
from frontend.api.text.openai_chat import chat_json, chat_sse
from frontend.api.text.openai_completions import completion_json, completion_sse
from frontend.api.text.tools import tool_calls
from frontend.errors import InvalidRequest
from frontend.workers.messages import Delta, Generation, Sampling, TokenLogprob

SAMPLING = Sampling(temperature=0.0, top_p=1.0, top_k=1, min_p=0.0)
CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
NAMES = frozenset({"get_weather"})


class FakeWorker:
    """Answers each generation with its prompt's words, one delta each; the last carries the counts."""

    def __init__(self, prompt_tokens: int = 7) -> None:
        self.prompt_tokens = prompt_tokens
        self.closed = 0
        self.sent = 0

    async def generate(self, generation: Generation) -> AsyncGenerator[Delta, None]:
        words = str(generation.prompt).split()
        try:
            for i, word in enumerate(words):
                await asyncio.sleep(0)  # a real worker's stream waits on the network between deltas
                last = i == len(words) - 1
                self.sent += 1
                yield Delta(
                    text=word if i == 0 else f" {word}",
                    tokens=1,
                    finish_reason="stop" if last else None,
                    prompt_tokens=self.prompt_tokens if last else 0,
                    completion_tokens=len(words) if last else 0,
                    logprobs=[TokenLogprob(word, -0.5, word.encode())] if generation.logprobs else [],
                )
        finally:
            self.closed += 1


def generation(prompt: str, logprobs: int = 0) -> Generation:
    return Generation(prompt=prompt, sampling=SAMPLING, logprobs=logprobs)


async def events_of(*events: Event) -> Events:
    for event in events:
        yield event


async def listed(events: AsyncGenerator) -> list:
    return [event async for event in events]


async def test_core_turns_deltas_into_text_finish_and_one_usage() -> None:
    events = await listed(generate(FakeWorker(), [generation("a b")], n=1))
    assert events == [
        TextDelta(0, "a", None),
        TextDelta(0, " b", None),
        Finish(0, "stop"),
        Usage(prompt_tokens=7, completion_tokens=2),
    ]


async def test_n_choices_of_one_prompt_count_the_prompt_once() -> None:
    events = await listed(generate(FakeWorker(prompt_tokens=5), [generation("a b")] * 3, n=3))
    assert [e for e in events if isinstance(e, Usage)] == [Usage(prompt_tokens=5, completion_tokens=6)]
    assert {e.choice for e in events if isinstance(e, Finish)} == {0, 1, 2}


async def test_several_prompts_times_n_count_each_prompt_once() -> None:
    generations = [generation(p) for p in ("a b", "c d e") for _ in range(2)]
    reply = await collect(generate(FakeWorker(prompt_tokens=4), generations, n=2), logprobs=False)
    assert ["".join(c.text) for c in reply.choices] == ["a b", "a b", "c d e", "c d e"]
    assert reply.usage == Usage(prompt_tokens=8, completion_tokens=10)


async def test_logprobs_are_none_unless_requested_and_collected_when_they_are() -> None:
    plain = await collect(generate(FakeWorker(), [generation("a b")], n=1), logprobs=False)
    assert plain.choices[0].logprobs is None
    wanted = await collect(generate(FakeWorker(), [generation("a b", logprobs=-1)], n=1), logprobs=True)
    assert [e.token for e in wanted.choices[0].logprobs or []] == ["a", "b"]


@pytest.mark.parametrize("n", [1, 2])
async def test_closing_the_events_closes_every_workers_stream(n: int) -> None:
    worker = FakeWorker()
    events = generate(worker, [generation("word " * 50)] * n, n=n)
    await anext(events)
    await events.aclose()
    for _ in range(10):  # the cancelled choice tasks unwind on the next turns of the loop
        await asyncio.sleep(0)
    assert worker.closed == n
    assert worker.sent < 10 * n


async def test_chat_json_has_the_chat_completion_envelope() -> None:
    reply = await collect(events_of(TextDelta(0, "hi", None), Finish(0, "stop"), Usage(3, 1)), False)
    body = chat_json("m", reply)
    assert body["id"].startswith("chatcmpl-")
    assert (body["object"], body["model"], body["system_fingerprint"]) == ("chat.completion", "m", None)
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


async def test_chat_sse_opens_each_choice_with_the_role_under_one_id() -> None:
    events = events_of(TextDelta(0, "hi", None), TextDelta(1, "yo", None), Finish(0, "stop"), Usage(3, 2))
    chunks = await listed(chat_sse("m", events, include_usage=True))
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert [c["choices"][0]["delta"] for c in chunks[:4]] == [
        {"role": "assistant", "content": ""},
        {"content": "hi"},
        {"role": "assistant", "content": ""},
        {"content": "yo"},
    ]
    assert chunks[4]["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 5


async def test_chat_sse_without_include_usage_sends_no_usage() -> None:
    chunks = await listed(chat_sse("m", events_of(Finish(0, "length"), Usage(3, 2)), include_usage=False))
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_completions_differ_only_in_envelope_and_choice_body() -> None:
    logprob = TokenLogprob("hi", -0.1, b"hi")
    events = (TextDelta(0, "hi", (logprob,)), Finish(0, "stop"), Usage(2, 1))
    body = completion_json("m", await collect(events_of(*events), logprobs=True))
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "hi"
    assert body["choices"][0]["logprobs"]["tokens"] == ["hi"]
    chunks = await listed(completion_sse("m", events_of(*events), include_usage=False))
    assert [c["choices"][0]["text"] for c in chunks] == ["hi", ""]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "stop"]


async def test_a_reply_that_is_a_call_becomes_tool_call_events() -> None:
    deltas = events_of(TextDelta(0, CALL[:10], None), TextDelta(0, CALL[10:], None), Finish(0, "stop"))
    events = await listed(tool_calls(deltas, NAMES))
    start, arguments, finish = events
    assert isinstance(start, ToolCallStart) and start.name == "get_weather" and start.id.startswith("call_")
    assert isinstance(arguments, ToolCallArguments) and json.loads(arguments.arguments) == {"city": "Paris"}
    assert finish == Finish(0, "tool_calls")


async def test_hermes_tool_call_blocks_become_one_call_each() -> None:
    text = f"<tool_call>{CALL}</tool_call>\n<tool_call>{CALL}</tool_call>"
    events = await listed(tool_calls(events_of(TextDelta(0, text, None), Finish(0, "stop")), NAMES))
    assert [e.call for e in events if isinstance(e, ToolCallStart)] == [0, 1]


async def test_an_ordinary_reply_passes_the_tool_step_as_its_text() -> None:
    deltas = events_of(TextDelta(0, "Hel", None), TextDelta(0, "lo", None), Finish(0, "length"), Usage(1, 2))
    events = await listed(tool_calls(deltas, NAMES))
    assert events == [TextDelta(0, "Hello", None), Finish(0, "length"), Usage(1, 2)]


async def test_tool_call_renders_as_chat_json_and_chunks() -> None:
    def calling() -> Events:
        return tool_calls(events_of(TextDelta(0, CALL, None), Finish(0, "stop"), Usage(4, 9)), NAMES)

    choice = chat_json("m", await collect(calling(), logprobs=False))["choices"][0]
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert choice["finish_reason"] == "tool_calls"
    chunks = await listed(chat_sse("m", calling(), include_usage=False))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": None}
    assert deltas[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    assert json.loads(deltas[2]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_more_than_16_stops_is_refused_when_the_body_is_parsed() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stop": [str(i) for i in range(17)],
    }
    with pytest.raises(InvalidRequest) as raised:
        parse(ChatCompletionRequest, body)
    assert raised.value.param == "stop"
    with pytest.raises(InvalidRequest):
        parse(CompletionRequest, {"model": "m", "prompt": "hi", "stop": [str(i) for i in range(17)]})


def test_16_stops_are_accepted() -> None:
    body = {"model": "m", "prompt": "hi", "stop": [str(i) for i in range(16)]}
    assert len(parse(CompletionRequest, body).stop_sequences()) == 16


def test_echo_and_empty_prompt_lists_are_refused_when_the_body_is_parsed() -> None:
    for field, value in (("echo", True), ("prompt", [])):
        with pytest.raises(InvalidRequest) as raised:
            parse(CompletionRequest, {"model": "m", "prompt": "hi", field: value})
        assert raised.value.param == field
