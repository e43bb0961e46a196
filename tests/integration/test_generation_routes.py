"""POST /v1/chat/completions and /v1/completions through aiohttp_client, served by the fake worker."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import aiohttp
import pytest

from frontend.app import create_app
from frontend.config import ServerConfig

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def chat(content: str, model: str = "echo", **fields: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **fields}


def sse_events(text: str) -> list[dict | str]:
    """The data of each server-sent event: a dict, or the literal "[DONE]"."""
    events: list[dict | str] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


@pytest.fixture
async def client(aiohttp_client, server_config: ServerConfig, spawner):
    return await aiohttp_client(create_app(server_config, spawn=spawner))


async def test_chat_completion_returns_the_workers_text(client, write_model) -> None:
    write_model("echo")
    response = await client.post(CHAT, json=chat("hello there world"))
    assert response.status == 200
    body = await response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "hello there world",
        "refusal": None,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


async def test_max_tokens_cuts_the_text_with_finish_reason_length(client, write_model) -> None:
    write_model("echo")
    response = await client.post(CHAT, json=chat("one two three four", max_tokens=2))
    choice = (await response.json())["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("one two", "length")


async def test_completion_returns_one_choice_per_prompt(client, write_model) -> None:
    write_model("echo")
    response = await client.post(COMPLETIONS, json={"model": "echo", "prompt": ["a b", "c d e"]})
    assert response.status == 200
    body = await response.json()
    assert [c["text"] for c in body["choices"]] == ["a b", "c d e"]
    assert body["usage"]["prompt_tokens"] == 5


async def test_completion_echo_is_refused_not_ignored(client, write_model) -> None:
    write_model("echo")
    response = await client.post(COMPLETIONS, json={"model": "echo", "prompt": "a b", "echo": True})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "echo"


async def test_too_many_stops_are_refused_before_any_worker_starts(client, write_model, spawner) -> None:
    write_model("echo")
    response = await client.post(CHAT, json=chat("hi", stop=[str(i) for i in range(17)]))
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "stop"
    assert spawner.count == 0


async def test_chat_stream_announces_the_role_streams_text_and_ends_with_done(client, write_model) -> None:
    write_model("echo")
    response = await client.post(CHAT, json=chat("one two", stream=True))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(await response.text())
    assert events[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "one two"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


async def test_load_failure_returns_500_worker_failed_with_the_cause(client, write_model) -> None:
    write_model("echo", behaviour={"fail_on_load": "weights are corrupt"})
    response = await client.post(CHAT, json=chat("hi"))
    assert response.status == 500
    error = (await response.json())["error"]
    assert error["code"] == "worker_failed"
    assert "weights are corrupt" in error["message"]


async def test_crash_mid_stream_ends_the_stream_with_an_sse_error_event(client, write_model) -> None:
    write_model("echo", behaviour={"crash_after_tokens": 1, "token_delay": 0.2})
    # A read timeout, so that a stream that never ends fails the test instead of hanging it.
    timeout = aiohttp.ClientTimeout(sock_read=3)
    response = await client.post(CHAT, json=chat("one two three", stream=True), timeout=timeout)
    assert response.status == 200
    events = sse_events(await response.text())
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == "worker_failed"
    assert "exited while serving a request (exit code 4)" in events[-2]["error"]["message"]
    # what the worker printed (here its farewell; in life another request's text) stays out of the stream
    assert "crashing mid-generation on purpose" not in events[-2]["error"]["message"]


async def test_preloaded_model_is_served_by_the_preloaded_worker(
    aiohttp_client, server_config: ServerConfig, spawner, write_model
) -> None:
    write_model("echo")
    config = dataclasses.replace(server_config, preload=("echo",))
    client = await aiohttp_client(create_app(config, spawn=spawner))
    assert await ready(client)
    assert spawner.count == 1
    assert (await client.post(CHAT, json=chat("hi"))).status == 200
    assert spawner.count == 1


async def test_readyz_returns_503_naming_the_models_still_preloading(
    aiohttp_client, server_config: ServerConfig, spawner, write_model
) -> None:
    write_model("slow", behaviour={"load_delay": 0.5})
    config = dataclasses.replace(server_config, preload=("slow",))
    client = await aiohttp_client(create_app(config, spawn=spawner))
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["pending"] == ["slow"]


async def test_each_of_n_choices_gets_the_text(client, write_model) -> None:
    write_model("echo")
    response = await client.post(CHAT, json=chat("a b", n=2))
    choices = (await response.json())["choices"]
    assert [(c["index"], c["message"]["content"]) for c in choices] == [(0, "a b"), (1, "a b")]


async def ready(client, timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await client.get("/readyz")).status != 200:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@pytest.mark.parametrize("fields", [{"seed": -1}, {"seed": 2**64}, {"max_tokens": 2**32}])
async def test_out_of_range_integer_is_not_a_server_error(client, write_model, fields: dict) -> None:
    write_model("echo")
    response = await client.post(CHAT, json=chat("hi", **fields))
    assert response.status in (200, 400)
