"""GET /backend/monitor, POST /backend/shutdown and /backend/load, GET /metrics, with the fake worker."""

from __future__ import annotations

import pytest

from frontend.app import create_app
from frontend.config import ServerConfig


@pytest.fixture
async def client(aiohttp_client, server_config: ServerConfig, spawner, write_model):
    write_model("echo")
    write_model("other")
    return await aiohttp_client(create_app(server_config, spawn=spawner))


async def test_load_starts_a_worker_and_describes_it(client, spawner) -> None:
    response = await client.post("/backend/load", json={"model": "echo"})
    assert response.status == 200
    body = await response.json()
    assert body["model"] == "echo"
    assert body["state"] == "ready"
    assert body["pid"] == spawner.processes[0].pid
    assert body["resident_bytes"] > 0


async def test_monitor_lists_every_loaded_worker(client) -> None:
    for name in ("echo", "other"):
        await client.post("/backend/load", json={"model": name})
    response = await client.get("/backend/monitor")
    workers = (await response.json())["workers"]
    assert sorted(w["model"] for w in workers) == ["echo", "other"]
    expected = {"state", "pid", "resident_bytes", "predicted_bytes", "in_flight", "requests_served",
                "last_used", "uptime_seconds", "context_size"}  # fmt: skip
    assert expected <= set(workers[0])
    assert all(w["context_size"] > 0 for w in workers)  # what the worker reported at load


async def test_monitor_of_one_model(client) -> None:
    await client.post("/backend/load", json={"model": "echo"})
    response = await client.get("/backend/monitor", params={"model": "echo"})
    assert [w["model"] for w in (await response.json())["workers"]] == ["echo"]


async def test_monitor_of_a_model_that_is_not_loaded_returns_404(client) -> None:
    response = await client.get("/backend/monitor", params={"model": "other"})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "model_not_loaded"


async def test_shutdown_stops_the_worker(client, spawner) -> None:
    await client.post("/backend/load", json={"model": "echo"})
    response = await client.post("/backend/shutdown", json={"model": "echo"})
    assert response.status == 200
    assert spawner.processes[0].returncode is not None
    assert (await (await client.get("/backend/monitor")).json())["workers"] == []


async def test_shutdown_of_a_model_that_is_not_loaded_returns_404(client) -> None:
    response = await client.post("/backend/shutdown", json={"model": "echo"})
    assert response.status == 404


async def test_load_of_an_unknown_model_returns_404(client) -> None:
    response = await client.post("/backend/load", json={"model": "nope"})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "model_not_found"


async def test_load_without_a_model_returns_400_naming_the_param(client) -> None:
    response = await client.post("/backend/load", json={})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "model"


async def test_metrics_are_in_prometheus_format(client) -> None:
    await client.post("/backend/load", json={"model": "echo"})
    await client.post("/backend/shutdown", json={"model": "echo"})
    await client.post("/backend/load", json={"model": "other"})
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'onebox_model_loaded{model="other"} 1.0' in text
    assert 'onebox_evictions_total{model="echo",reason="manual"} 1.0' in text
    assert 'onebox_model_resident_bytes{model="other"}' in text
    assert "onebox_model_load_seconds" in text
