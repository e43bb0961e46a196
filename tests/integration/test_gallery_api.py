"""The gallery endpoints through the real app factory; the files come from a local server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from frontend.app import create_app
from frontend.config import ServerConfig

DATA = b"GGUF" + b"\0" * 200_000
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
async def base_url(aiohttp_server, tmp_path: Path) -> str:
    served = tmp_path / "served"
    served.mkdir()
    (served / "tiny.gguf").write_bytes(DATA)
    app = web.Application()
    app.router.add_static("/", served)
    server = await aiohttp_server(app)
    url = f"http://127.0.0.1:{server.port}"
    index = [
        {
            "name": "tiny",
            "description": "a tiny test model",
            "license": "apache-2.0",
            "files": [{"filename": "tiny.gguf", "uri": f"{url}/tiny.gguf", "sha256": SHA, "size": len(DATA)}],
            "config": {"backend": "llama-cpp"},
        }
    ]
    (served / "index.yaml").write_text(yaml.safe_dump(index))
    (served / "entry.yaml").write_text(yaml.safe_dump(index[0]))
    return url


def config(models_path: Path, base_url: str, **fields: object) -> ServerConfig:
    """The tests' file server is on 127.0.0.1 over plain http: as its operator, they allow both."""
    local = {"allow_private_downloads": True, "allow_http_downloads": True}
    return ServerConfig(
        models_path=models_path, galleries=(("local", f"{base_url}/index.yaml"),), **(local | fields)
    )


async def wait_job(client, job_uuid: str) -> dict:
    for _ in range(500):
        job = await (await client.get(f"/models/jobs/{job_uuid}")).json()
        if job["phase"] in {"done", "failed", "cancelled"}:
            return job
        await asyncio.sleep(0.01)
    raise AssertionError("the job did not finish")


async def test_available_lists_the_gallery_entries(aiohttp_client, models_path, base_url) -> None:
    client = await aiohttp_client(create_app(config(models_path, base_url)))
    entries = await (await client.get("/models/available")).json()
    assert [(e["id"], e["installed"], e["backend"]) for e in entries] == [("local@tiny", False, "llama-cpp")]


async def test_apply_answers_at_once_then_the_model_is_listed(aiohttp_client, models_path, base_url) -> None:
    client = await aiohttp_client(create_app(config(models_path, base_url)))
    response = await client.post("/models/apply", json={"id": "local@tiny"})
    assert response.status == 202
    body = await response.json()
    assert set(body) == {"uuid", "status"}
    job = await wait_job(client, body["uuid"])
    assert job["phase"] == "done", job["error"]
    assert job["bytes_done"] == job["total_bytes"] == len(DATA)
    models = await (await client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["tiny"]
    assert [j["uuid"] for j in await (await client.get("/models/jobs")).json()] == [body["uuid"]]


async def test_apply_by_url_with_a_new_name(aiohttp_client, models_path, base_url) -> None:
    client = await aiohttp_client(create_app(config(models_path, base_url)))
    request = {
        "url": f"{base_url}/tiny.gguf",
        "name": "other",
        "sha256": SHA,
        "overrides": {"context_size": 256},
    }
    body = await (await client.post("/models/apply", json=request)).json()
    assert (await wait_job(client, body["uuid"]))["phase"] == "done"
    written = yaml.safe_load((models_path / "other.yaml").read_text())
    assert written["file"] == "other/tiny.gguf" and written["context_size"] == 256


async def test_apply_by_entry_url(aiohttp_client, models_path, base_url) -> None:
    client = await aiohttp_client(create_app(config(models_path, base_url)))
    body = await (await client.post("/models/apply", json={"url": f"{base_url}/entry.yaml"})).json()
    assert (await wait_job(client, body["uuid"]))["phase"] == "done"
    assert (models_path / "tiny" / "tiny.gguf").read_bytes() == DATA


async def test_unreadable_entry_url_is_400(aiohttp_client, models_path, base_url) -> None:
    client = await aiohttp_client(create_app(config(models_path, base_url)))
    response = await client.post("/models/apply", json={"url": f"{base_url}/missing.yaml"})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "gallery_error"


async def test_unknown_entry_is_404(aiohttp_client, models_path, base_url) -> None:
    client = await aiohttp_client(create_app(config(models_path, base_url)))
    response = await client.post("/models/apply", json={"id": "local@nope"})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "model_not_found"


async def test_delete_removes_the_model(aiohttp_client, models_path, base_url) -> None:
    client = await aiohttp_client(create_app(config(models_path, base_url)))
    body = await (await client.post("/models/apply", json={"id": "local@tiny"})).json()
    await wait_job(client, body["uuid"])
    response = await client.post("/models/delete/tiny")
    assert response.status == 200
    assert not (models_path / "tiny.yaml").exists()
    assert (await client.post("/models/delete/tiny")).status == 404


async def test_unknown_job_is_404(aiohttp_client, models_path, base_url) -> None:
    client = await aiohttp_client(create_app(config(models_path, base_url)))
    assert (await client.get("/models/jobs/no-such-job")).status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/models/available"), ("POST", "/models/apply"), ("GET", "/models/jobs"),
     ("POST", "/models/delete/tiny")],
)  # fmt: skip
async def test_gallery_routes_need_a_key_when_keys_are_set(
    aiohttp_client, models_path, base_url, method: str, path: str
) -> None:
    client = await aiohttp_client(create_app(config(models_path, base_url, api_keys=("sk-1",))))
    response = await client.request(method, path, json={"id": "local@tiny"})
    assert response.status == 401
    assert not (models_path / "tiny.yaml").exists()
