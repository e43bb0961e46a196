"""--admin-api-keys: with them set, only they reach the gallery, /backend/* and /metrics; every key infers."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontend.app import create_app
from frontend.config import ServerConfig
from frontend.security import public_bind_refusal
from frontend.state import MANAGER

INFERENCE = {"Authorization": "Bearer sk-user"}
ADMIN = {"Authorization": "Bearer sk-admin"}
ADMIN_ROUTES = [
    ("GET", "/models/available"),
    ("GET", "/models/jobs"),
    ("POST", "/models/apply"),
    ("POST", "/models/delete/echo"),
    ("POST", "/models/jobs/0123/cancel"),
    ("POST", "/backend/load"),
    ("POST", "/backend/shutdown"),
    ("GET", "/backend/monitor"),
    ("GET", "/metrics"),
    ("GET", "/%62ackend/monitor"),  # the same route, spelled otherwise
]


@pytest.fixture
async def client(aiohttp_client, models_path: Path):  # type: ignore[no-untyped-def]
    config = ServerConfig(models_path=models_path, api_keys=("sk-user",), admin_api_keys=("sk-admin",))
    return await aiohttp_client(create_app(config))


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_an_inference_key_gets_403_on_admin_routes(client, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    response = await client.request(method, path, headers=INFERENCE, json={})
    assert response.status == 403
    error = (await response.json())["error"]
    assert (error["type"], error["code"]) == ("permission_error", "insufficient_permissions")
    assert "--admin-api-keys" in error["message"]


async def test_refusals_are_counted(client) -> None:  # type: ignore[no-untyped-def]
    await client.get("/backend/monitor", headers=INFERENCE)
    registry = client.app[MANAGER].metrics.registry
    assert registry.get_sample_value("onebox_requests_refused_total", {"reason": "admin_key_required"}) == 1


@pytest.mark.parametrize("path", ["/backend/monitor", "/metrics", "/models/jobs"])
async def test_an_admin_key_reaches_admin_routes(client, path: str) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get(path, headers=ADMIN)).status == 200


@pytest.mark.parametrize("headers", [INFERENCE, ADMIN])
async def test_both_kinds_of_key_reach_inference_routes(client, headers: dict) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get("/v1/models", headers=headers)).status == 200


async def test_a_wrong_key_is_still_401_on_admin_routes(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/backend/monitor", headers={"Authorization": "Bearer sk-nope"})
    assert response.status == 401


async def test_without_admin_keys_every_key_may_do_everything(aiohttp_client, models_path: Path) -> None:
    client = await aiohttp_client(create_app(ServerConfig(models_path=models_path, api_keys=("sk-user",))))
    assert (await client.get("/backend/monitor", headers=INFERENCE)).status == 200
    assert (await client.get("/metrics", headers=INFERENCE)).status == 200


async def test_admin_keys_alone_turn_authentication_on(aiohttp_client, models_path: Path) -> None:
    client = await aiohttp_client(
        create_app(ServerConfig(models_path=models_path, admin_api_keys=("sk-admin",)))
    )
    assert (await client.get("/v1/models")).status == 401
    assert (await client.get("/v1/models", headers=ADMIN)).status == 200


def test_admin_keys_count_as_keys_for_a_public_bind(models_path: Path) -> None:
    assert public_bind_refusal(ServerConfig(host="0.0.0.0", admin_api_keys=("sk-admin",))) is None
    assert public_bind_refusal(ServerConfig(host="0.0.0.0")) is not None
