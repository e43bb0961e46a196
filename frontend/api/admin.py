"""The operator's view of the workers: GET /backend/monitor, POST /backend/shutdown and /backend/load,
and GET /metrics (Prometheus)."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict

from frontend.api.parsing import ModelName, model_name, parse_body
from frontend.errors import NotFound
from frontend.state import MANAGER, REGISTRY
from frontend.workers.manager import ProcessManager
from frontend.workers.worker import Worker, WorkerState

routes = web.RouteTableDef()


class ModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelName


def describe(worker: Worker) -> dict:
    now, wall = time.monotonic(), time.time()
    state = worker.state.value
    if worker.state is WorkerState.READY and worker.in_flight > 0:
        state = "busy"
    return {
        "model": worker.name,
        "state": state,
        "pid": worker.pid,
        "resident_bytes": worker.resident,
        "predicted_bytes": worker.footprint,
        "in_flight": worker.in_flight,
        "requests_served": worker.served,
        "last_used": wall - (now - worker.last_used),
        "idle_seconds": 0.0 if worker.in_flight else now - worker.last_used,
        "uptime_seconds": now - worker.started_at,
        "pinned": worker.config.pinned,
        # what the worker really loaded (llama.cpp may cap the YAML's context_size); None while starting
        "context_size": worker.info.context_size if worker.info else None,
    }


def monitor(manager: ProcessManager, model: str | None = None) -> list[dict]:
    manager.refresh_memory()
    workers = [*manager.workers(), *manager.starting(), *manager.stopping()]
    return [describe(w) for w in workers if model is None or w.name == model]


@routes.get("/backend/monitor")
async def backend_monitor(request: web.Request) -> web.Response:
    model = request.query.get("model")
    if model is not None:
        request.app[REGISTRY].get(model_name(model))  # 404 for a model this server does not offer
    found = monitor(request.app[MANAGER], model)
    if model is not None and not found:
        raise NotFound(f"the model {model!r} is not loaded", param="model", code="model_not_loaded")
    return web.json_response({"workers": found})


@routes.post("/backend/shutdown")
async def backend_shutdown(request: web.Request) -> web.Response:
    body = await parse_body(request, ModelRequest)
    if not await request.app[MANAGER].stop(body.model, "manual"):
        raise NotFound(f"the model {body.model!r} is not loaded", param="model", code="model_not_loaded")
    return web.json_response({"model": body.model, "stopped": True})


@routes.post("/backend/load")
async def backend_load(request: web.Request) -> web.Response:
    body = await parse_body(request, ModelRequest)
    worker = await request.app[MANAGER].ensure_ready(body.model)
    return web.json_response(describe(worker))


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    manager.refresh_memory()
    response = web.Response(body=manager.metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
