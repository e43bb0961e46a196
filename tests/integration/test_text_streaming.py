"""Streams served by aiohttp (frontend/api/sse.py and the error middleware): errors after the first event,
before it, and a client that goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import aiohttp
from aiohttp import web

from frontend.api.errors import error_middleware
from frontend.api.sse import serve_sse
from frontend.errors import InvalidRequest, WorkerFailed


def sse_data(text: str) -> list[str]:
    return [block.removeprefix("data: ") for block in text.split("\n\n") if block]


async def serve(aiohttp_client, payloads: AsyncGenerator[dict, None]):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_sse(request, payloads)

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/stream", handler)
    return await aiohttp_client(app)


async def test_error_after_the_stream_started_ends_it_with_an_error_event_then_done(aiohttp_client) -> None:
    async def failing() -> AsyncGenerator[dict, None]:
        yield {"n": 1}
        raise WorkerFailed("the worker died")

    response = await (await serve(aiohttp_client, failing())).get("/stream")
    assert response.status == 200
    data = sse_data(await response.text())
    assert data[0] == '{"n":1}'
    assert json.loads(data[1])["error"]["code"] == "worker_failed"
    assert data[2:] == ["[DONE]"]


async def test_unexpected_error_after_start_is_an_sse_500_not_a_second_response(aiohttp_client) -> None:
    async def failing() -> AsyncGenerator[dict, None]:
        yield {"n": 1}
        raise RuntimeError("secret internals")

    response = await (await serve(aiohttp_client, failing())).get("/stream")
    text = await response.text()
    assert "HTTP/1.1" not in text and "secret internals" not in text
    data = sse_data(text)
    assert json.loads(data[1])["error"]["code"] == "internal_error"
    assert data[-1] == "[DONE]"


async def test_error_before_the_first_event_is_a_json_error_with_its_status(aiohttp_client) -> None:
    async def failing() -> AsyncGenerator[dict, None]:
        raise InvalidRequest("prompt too long", param="messages")
        yield {}

    response = await (await serve(aiohttp_client, failing())).get("/stream")
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "messages"


async def test_client_going_away_closes_the_generation(aiohttp_client) -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[dict, None]:
        try:
            while True:
                yield {"text": "x" * 1024}
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    client = await serve(aiohttp_client, endless())
    response = await client.get("/stream", timeout=aiohttp.ClientTimeout(sock_read=3))
    await response.content.readline()
    response.close()
    await asyncio.wait_for(closed.wait(), timeout=5)
