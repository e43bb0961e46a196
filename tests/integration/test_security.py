"""API keys, CORS and request ids, through the real app factory with aiohttp_client (no worker needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from frontend.app import create_app
from frontend.config import ServerConfig
from frontend.security import key_matches, parse_api_keys, public_bind_refusal

KEYS = ("sk-one", "sk-two")
ORIGIN = "https://app.example"


@pytest.fixture
def secured(models_path: Path) -> ServerConfig:
    return ServerConfig(models_path=models_path, api_keys=KEYS, cors_allow_origins=(ORIGIN,))


async def test_missing_key_gets_401_in_openai_shape(aiohttp_client, secured) -> None:
    client = await aiohttp_client(create_app(secured))
    response = await client.get("/v1/models")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error = (await response.json())["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == "missing_api_key"


async def test_wrong_key_gets_401(aiohttp_client, secured) -> None:
    client = await aiohttp_client(create_app(secured))
    response = await client.get("/v1/models", headers={"Authorization": "Bearer sk-nope"})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_api_key"


async def test_unknown_route_without_key_is_401_not_404(aiohttp_client, secured) -> None:
    client = await aiohttp_client(create_app(secured))
    assert (await client.get("/v1/nothing-here")).status == 401


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer sk-two"}, {"x-api-key": "sk-one"}])
async def test_bearer_or_x_api_key_is_accepted(aiohttp_client, secured, headers) -> None:
    client = await aiohttp_client(create_app(secured))
    assert (await client.get("/v1/models", headers=headers)).status == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_routes_stay_open(aiohttp_client, secured, path) -> None:
    client = await aiohttp_client(create_app(secured))
    assert (await client.get(path)).status in {200, 503}


async def test_no_keys_configured_means_open(aiohttp_client, models_path) -> None:
    client = await aiohttp_client(create_app(ServerConfig(models_path=models_path)))
    assert (await client.get("/v1/models")).status == 200


def test_key_file_has_one_key_per_line(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# comment\nsk-a\n\n  sk-b  \n")
    assert parse_api_keys(str(path)) == ("sk-a", "sk-b")
    assert parse_api_keys(" sk-a, sk-b ,") == ("sk-a", "sk-b")
    assert parse_api_keys("") == ()


def test_key_matching_is_exact() -> None:
    assert key_matches("sk-two", KEYS)
    assert not key_matches("sk-tw", KEYS)
    assert not key_matches("sk-two ", KEYS)
    assert not key_matches("", KEYS)


@pytest.mark.parametrize(
    ("host", "keys", "insecure", "refused"),
    [
        ("127.0.0.1", (), False, False),
        ("::1", (), False, False),
        ("localhost", (), False, False),
        ("0.0.0.0", (), False, True),
        ("192.168.1.5", (), False, True),
        ("0.0.0.0", ("k",), False, False),
        ("0.0.0.0", (), True, False),
    ],
)
def test_public_bind_needs_keys_or_explicit_consent(host, keys, insecure, refused) -> None:
    config = ServerConfig(host=host, api_keys=keys, allow_insecure_public_bind=insecure)
    assert (public_bind_refusal(config) is not None) == refused


async def test_preflight_from_allowed_origin_is_answered(aiohttp_client, secured) -> None:
    client = await aiohttp_client(create_app(secured))
    response = await client.options(
        "/v1/chat/completions",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


async def test_preflight_from_refused_origin_gets_no_allow_header(aiohttp_client, secured) -> None:
    client = await aiohttp_client(create_app(secured))
    response = await client.options(
        "/v1/chat/completions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_actual_response_carries_cors_headers_for_allowed_origin(aiohttp_client, secured) -> None:
    client = await aiohttp_client(create_app(secured))
    response = await client.get("/v1/models", headers={"Origin": ORIGIN, "x-api-key": "sk-one"})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    refused = await client.get(
        "/v1/models", headers={"Origin": "https://evil.example", "x-api-key": "sk-one"}
    )
    assert "Access-Control-Allow-Origin" not in refused.headers


async def test_cors_off_by_default(aiohttp_client, models_path) -> None:
    client = await aiohttp_client(create_app(ServerConfig(models_path=models_path)))
    response = await client.options(
        "/v1/models", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_request_id_is_echoed(aiohttp_client, secured) -> None:
    client = await aiohttp_client(create_app(secured))
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


async def test_request_id_is_generated_when_missing_or_unsafe(aiohttp_client, secured) -> None:
    client = await aiohttp_client(create_app(secured))
    plain = await client.get("/healthz")
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert len(plain.headers["X-Request-ID"]) == 32
    assert unsafe.headers["X-Request-ID"] != "bad id\twith spaces"


async def test_request_id_is_in_log_lines_about_the_request(aiohttp_client, secured, caplog) -> None:
    from frontend.security import RequestIdFilter

    caplog.handler.addFilter(RequestIdFilter())
    client = await aiohttp_client(create_app(secured))
    with caplog.at_level(logging.INFO, logger="onebox.security"):
        await client.get("/v1/models", headers={"X-Request-ID": "trace-42"})
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refused
    assert refused[0].request_id == "trace-42"
