"""frontend/app.py, errors.py and the routes that need no worker, through aiohttp_client."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from frontend.app import create_app
from frontend.config import ServerConfig

CHAT = "/v1/chat/completions"


def assert_openai_error(body: dict) -> dict:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.fixture
async def client(aiohttp_client, models_path: Path):
    return await aiohttp_client(create_app(ServerConfig(models_path=models_path, max_body_bytes=4096)))


async def test_unknown_route_returns_404_in_openai_shape(client) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status == 404
    assert assert_openai_error(await response.json())["code"] == "not_found"


async def test_wrong_method_returns_405_in_openai_shape(client) -> None:
    response = await client.get(CHAT)
    assert response.status == 405
    assert assert_openai_error(await response.json())["code"] == "method_not_allowed"


async def test_malformed_json_returns_400_invalid_json(client) -> None:
    response = await client.post(CHAT, data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert assert_openai_error(await response.json())["code"] == "invalid_json"


async def test_empty_body_returns_400_invalid_json(client) -> None:
    response = await client.post(CHAT, data=b"")
    assert response.status == 400
    assert assert_openai_error(await response.json())["code"] == "invalid_json"


async def test_json_that_is_not_an_object_returns_400_invalid_json(client) -> None:
    response = await client.post(CHAT, json=[1, 2, 3])
    assert response.status == 400
    assert assert_openai_error(await response.json())["code"] == "invalid_json"


async def test_body_over_the_limit_returns_413_in_openai_shape(client) -> None:
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 10_000}]}
    response = await client.post(CHAT, json=big)
    assert response.status == 413
    assert assert_openai_error(await response.json())["code"] == "request_too_large"


async def test_invalid_field_returns_400_naming_the_param(client) -> None:
    response = await client.post(CHAT, json={"model": "m", "messages": [{"role": "robot", "content": "x"}]})
    assert response.status == 400
    assert assert_openai_error(await response.json())["param"] == "messages[0].role"


async def test_unknown_model_returns_404_pointing_at_the_model_list(client) -> None:
    response = await client.post(CHAT, json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert response.status == 404
    error = assert_openai_error(await response.json())
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert "GET /v1/models" in error["message"]


async def test_model_name_that_is_a_path_returns_400(client) -> None:
    body = {"model": "../../etc/passwd", "messages": [{"role": "user", "content": "x"}]}
    response = await client.post(CHAT, json=body)
    assert response.status == 400
    assert assert_openai_error(await response.json())["code"] == "invalid_model_name"


async def test_model_list_shows_the_yamls_in_the_models_folder(client, write_model) -> None:
    write_model("alpha")
    write_model("beta")
    response = await client.get("/v1/models")
    assert response.status == 200
    body = await response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["alpha", "beta"]
    assert all(m["object"] == "model" for m in body["data"])


async def test_model_list_is_empty_for_an_empty_models_folder(client) -> None:
    response = await client.get("/v1/models")
    assert (await response.json())["data"] == []


async def test_single_model_lookup_returns_the_model(client, write_model) -> None:
    write_model("alpha")
    response = await client.get("/v1/models/alpha")
    assert response.status == 200
    assert (await response.json())["id"] == "alpha"


async def test_single_model_lookup_of_unknown_model_returns_404(client) -> None:
    response = await client.get("/v1/models/ghost")
    assert response.status == 404
    assert assert_openai_error(await response.json())["code"] == "model_not_found"


async def test_healthz_returns_200(client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200


async def test_readyz_returns_200_when_nothing_is_preloaded(client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["status"] == "ready"


async def test_unknown_model_message_is_openais(client) -> None:
    response = await client.get("/v1/models/ghost")
    error = assert_openai_error(await response.json())
    assert error["message"] == (
        "the model 'ghost' does not exist; GET /v1/models lists the models this server offers"
    )
    assert (error["type"], error["param"]) == ("invalid_request_error", "model")


async def test_bad_yaml_is_logged_at_start_up_and_its_model_is_a_404(
    aiohttp_client, models_path: Path, write_model, caplog: pytest.LogCaptureFixture
) -> None:
    write_model("good")
    write_model("typo", options={"batch_sise": 8})
    with caplog.at_level(logging.ERROR, logger="onebox.config"):
        client = await aiohttp_client(create_app(ServerConfig(models_path=models_path)))
        assert any("typo.yaml: key 'options.batch_sise'" in r.getMessage() for r in caplog.records)
    assert [m["id"] for m in (await (await client.get("/v1/models")).json())["data"]] == ["good"]
    response = await client.post(CHAT, json={"model": "typo", "messages": [{"role": "user", "content": "x"}]})
    assert response.status == 404
    assert assert_openai_error(await response.json())["code"] == "model_not_found"
