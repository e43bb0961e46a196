"""Hostile or careless clients at the edge: each case a clear 4xx before any worker is touched.

Browser-borne requests (DNS rebinding, cross-site "simple" POSTs) and JSON that parses but cannot be served
(non-finite numbers, absurd nesting, huge integers, unpaired surrogates, non-UTF-8 credentials).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from frontend.app import create_app
from frontend.config import ServerConfig

CHAT = "/v1/chat/completions"


@pytest.fixture
async def client(aiohttp_client, models_path: Path):  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(ServerConfig(models_path=models_path)))


async def test_a_rebound_host_name_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/v1/models", headers={"Host": "evil.example:8080"})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "host_not_allowed"


async def test_health_checks_answer_any_local_host(client) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get("/healthz", headers={"Host": "localhost"})).status == 200


async def test_a_cross_site_install_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(
        "/models/apply", json={"id": "onebox@x"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "cross_origin_refused"


async def test_a_cross_site_delete_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/models/delete/x", headers={"Origin": "https://evil.example"})
    assert response.status == 403


async def test_a_text_plain_body_is_refused_on_json_routes(client) -> None:  # type: ignore[no-untyped-def]
    body = '{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}'
    for path in (CHAT, "/models/apply"):
        response = await client.post(path, data=body, headers={"Content-Type": "text/plain"})
        assert response.status == 415, path
        assert (await response.json())["error"]["code"] == "unsupported_media_type"


async def test_a_form_encoded_chat_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(CHAT, data={"model": "echo"})
    assert response.status == 415


@pytest.mark.parametrize(
    "raw",
    [
        '{"model": "echo", "repeat_penalty": Infinity, "messages": []}',
        '{"model": "echo", "temperature": NaN, "messages": []}',
        '{"model": "echo", "messages": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"model": "echo", "seed": ' + "9" * 5000 + ', "messages": []}',
        '{"model": "echo", "messages": [{"role": "user", "content": "\\ud800"}]}',
    ],
    ids=["infinity", "nan", "deep-nesting", "huge-integer", "lone-surrogate"],
)
async def test_json_that_cannot_be_served_is_a_400(client, raw: str) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(CHAT, data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_json"


async def test_a_paired_surrogate_escape_is_fine(client) -> None:  # type: ignore[no-untyped-def]
    raw = '{"model": "no such model", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
    response = await client.post(CHAT, data=raw, headers={"Content-Type": "application/json"})
    assert (await response.json())["error"]["code"] == "invalid_model_name"  # got past the JSON checks


async def test_non_utf8_authorization_is_a_401(aiohttp_client, models_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(ServerConfig(models_path=models_path, api_keys=("sk-one",)))
    client = await aiohttp_client(app)
    # raw bytes: an HTTP client library would encode the header itself
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\xfe\x80\r\n"
                 b"Connection: close\r\n\r\n")  # fmt: skip
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == b"401"
