"""What the operator sees: /v1/models extensions, a model without its weights, the load-time log line and
metric, and no stray generated/ folder."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from frontend.app import create_app
from frontend.config import ServerConfig


@pytest.fixture
async def client(aiohttp_client, server_config: ServerConfig, spawner, write_model):
    write_model("echo")
    return await aiohttp_client(create_app(server_config, spawn=spawner))


async def test_models_list_says_the_backend_and_whether_the_weights_are_there(client, write_model) -> None:
    (write_model("gone").parent / "gone.gguf").unlink()
    response = await client.get("/v1/models")
    items = {m["id"]: m for m in (await response.json())["data"]}
    assert items["echo"]["backend"] == "llama-cpp" and items["echo"]["installed"] is True
    assert items["gone"]["installed"] is False
    assert {"id", "object", "created", "owned_by"} <= set(items["gone"])  # the OpenAI fields stay


async def test_a_model_without_its_weights_is_a_404_that_says_how_to_fix_it(
    client, write_model, spawner
) -> None:
    (write_model("gone").parent / "gone.gguf").unlink()
    response = await client.post(
        "/v1/chat/completions", json={"model": "gone", "messages": [{"role": "user", "content": "hi"}]}
    )
    error = (await response.json())["error"]
    assert response.status == 404
    assert error["code"] == "model_not_installed"
    assert "'gone.gguf' is not in the models directory" in error["message"]
    assert "onebox models install gone" in error["message"] and "fix `file:`" in error["message"]
    assert spawner.count == 0


async def test_the_load_time_logged_is_the_one_in_the_metrics(
    client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="onebox.manager"):
        assert (await client.post("/backend/load", json={"model": "echo"})).status == 200
    logged = next(m for r in caplog.records if (m := re.search(r"echo loaded in ([\d.]+)s", r.getMessage())))
    metrics = await (await client.get("/metrics")).text()
    measured = float(re.search(r'onebox_model_load_seconds\{model="echo"\} ([\d.e+-]+)', metrics)[1])
    assert logged[1] == f"{measured:.2f}"


async def test_no_generated_folder_until_an_image_is_written(aiohttp_client, models_path: Path) -> None:
    folder = models_path.parent / "generated-here"
    client = await aiohttp_client(create_app(ServerConfig(models_path=models_path, generated_path=folder)))
    assert (await client.get("/healthz")).status == 200
    assert not folder.exists()
