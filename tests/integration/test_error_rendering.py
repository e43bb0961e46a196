"""frontend/errors.py and frontend/api/errors.py: one OpenAI error shape, as JSON and as an SSE event, and a
plain 500 for surprises."""

from __future__ import annotations

import json

from aiohttp import web

from frontend.api.errors import error_middleware, from_http_exception, sse_error_event
from frontend.errors import APIError, InvalidRequest, ModelNotFound, PayloadTooLarge


def test_error_body_has_the_openai_shape() -> None:
    body = InvalidRequest("bad n", param="n").body()
    assert body == {
        "error": {
            "message": "bad n",
            "type": "invalid_request_error",
            "param": "n",
            "code": "invalid_request",
        }
    }


def test_code_given_at_raise_time_overrides_the_class_code() -> None:
    assert InvalidRequest("x", code="invalid_json").code == "invalid_json"
    assert InvalidRequest("x").code == "invalid_request"


def test_model_not_found_is_a_404() -> None:
    error = ModelNotFound("nope")
    assert (error.status, error.code) == (404, "model_not_found")


def test_sse_error_event_carries_the_body_then_done() -> None:
    event = sse_error_event(InvalidRequest("bad", param="stop"))
    first, second = event.decode().strip().split("\n\n")
    assert json.loads(first.removeprefix("data: "))["error"]["param"] == "stop"
    assert second == "data: [DONE]"


def test_aiohttp_413_becomes_payload_too_large() -> None:
    error = from_http_exception(web.HTTPRequestEntityTooLarge(max_size=10, actual_size=20))
    assert isinstance(error, PayloadTooLarge)
    assert error.status == 413


def test_other_aiohttp_client_error_keeps_its_status() -> None:
    error = from_http_exception(web.HTTPUnsupportedMediaType())
    assert (error.status, error.type, error.code) == (415, "invalid_request_error", None)


async def test_unexpected_exception_becomes_a_plain_500(aiohttp_client) -> None:
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    response = await client.get("/boom")
    assert response.status == 500
    error = (await response.json())["error"]
    assert error["code"] == "internal_error"
    assert "secret internals" not in error["message"]


async def test_api_error_headers_reach_the_response(aiohttp_client) -> None:
    async def busy(request: web.Request) -> web.Response:
        raise APIError("busy", headers={"Retry-After": "3"})

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/busy", busy)
    client = await aiohttp_client(app)
    response = await client.get("/busy")
    assert response.headers["Retry-After"] == "3"
