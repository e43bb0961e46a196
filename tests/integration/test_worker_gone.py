"""A worker that goes away mid-stream ends the stream with an SSE error event that says why, whatever the
cause (frontend/workers/worker.py, Worker._call); driven through the HTTP API with the fake worker."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from frontend.app import create_app
from frontend.config import ServerConfig
from frontend.errors import WorkerFailed
from frontend.workers.messages import Generation
from tests.integration.helpers import SAMPLING

WORDS = "one two three four five six seven eight nine ten"

MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_client(aiohttp_client, server_config: ServerConfig, spawner) -> MakeClient:
    async def make(**settings: object) -> TestClient:
        return await aiohttp_client(create_app(dataclasses.replace(server_config, **settings), spawn=spawner))

    return make


async def open_stream(client: TestClient, model: str) -> tuple[ClientResponse, bytes]:
    """Start a streamed chat completion; return once its first event arrived."""
    response = await client.post(
        "/v1/chat/completions",
        json={"model": model, "stream": True, "messages": [{"role": "user", "content": WORDS}]},
    )
    assert response.status == 200
    return response, await response.content.readline()


def events(body: bytes) -> list[str]:
    """The data of each SSE event; every event must be a single `data:` line."""
    blocks = body.decode().split("\n\n")
    assert blocks[-1] == "", f"the body does not end with a complete event: {body!r}"
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks[:-1]), body
    return [block.removeprefix("data: ") for block in blocks[:-1]]


def assert_ends_with_error(body: bytes, *words: str) -> dict:
    data = events(body)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]  # every event is well-formed JSON
    error = chunks[-1]["error"]
    assert error["code"] == "worker_failed"
    assert all(word in error["message"] for word in words), error
    assert all("error" not in chunk for chunk in chunks[:-1])
    assert any(chunk.get("choices") for chunk in chunks[:-1])  # it failed mid-stream, not before
    return error


async def test_shutdown_mid_stream_ends_the_stream_with_an_error_event(make_client, write_model) -> None:
    write_model("echo", behaviour={"token_delay": 0.1})
    client = await make_client()
    response, head = await open_stream(client, "echo")
    shutdown = await client.post("/backend/shutdown", json={"model": "echo"})
    assert shutdown.status == 200
    body = head + await response.content.read()  # a protocol error (a status line mid-body) raises here
    assert_ends_with_error(body, "echo", "was stopped", "manual")


async def test_hung_worker_killed_mid_stream_ends_the_stream_with_an_error(make_client, write_model) -> None:
    write_model("stuck", behaviour={"hang_after_tokens": 1})
    client = await make_client(watchdog_busy_timeout=0.5, watchdog_interval=0.05)
    response, head = await open_stream(client, "stuck")
    body = head + await response.content.read()
    assert_ends_with_error(body, "stuck", "was stopped", "hung")


async def test_server_goes_on_serving_the_model_after_a_shutdown_mid_stream(make_client, write_model) -> None:
    write_model("echo", behaviour={"token_delay": 0.05})
    client = await make_client()
    response, _ = await open_stream(client, "echo")
    await client.post("/backend/shutdown", json={"model": "echo"})
    await response.content.read()
    again = await client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "back again"}]},
    )
    assert again.status == 200
    assert (await again.json())["choices"][0]["message"]["content"] == "back again"


# --- the same, at the manager's level -------------------------------------------------------------


async def test_stopping_a_worker_fails_its_stream_with_the_reason(manager, write_model) -> None:
    write_model("echo", behaviour={"token_delay": 0.1})
    async with manager.use("echo") as worker:
        stream = worker.generate(Generation(prompt=WORDS, sampling=SAMPLING))
        await anext(stream)
        stopping = asyncio.create_task(manager.stop("echo"))
        with pytest.raises(WorkerFailed, match="was stopped: manual"):
            async for _ in stream:
                pass
        assert await stopping


async def test_a_cancelled_request_stays_cancelled(manager, write_model) -> None:
    write_model("echo", behaviour={"token_delay": 0.1})
    first = asyncio.Event()

    async def consume() -> None:
        async with manager.use("echo") as worker:
            async for _ in worker.generate(Generation(prompt=WORDS, sampling=SAMPLING)):
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [w.name for w in manager.workers()] == ["echo"]  # the worker serves on


async def test_a_request_cancelled_while_its_worker_stops_stays_cancelled(manager, write_model) -> None:
    write_model("echo", behaviour={"token_delay": 0.1})
    first = asyncio.Event()

    async def consume() -> None:
        async with manager.use("echo") as worker:
            async for _ in worker.generate(Generation(prompt=WORDS, sampling=SAMPLING)):
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    await manager.stop("echo")
    with pytest.raises(asyncio.CancelledError):
        await task
