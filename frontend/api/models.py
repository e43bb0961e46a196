"""GET /v1/models and /v1/models/{model}."""

from __future__ import annotations

from aiohttp import web

from frontend.api.parsing import model_name
from frontend.state import REGISTRY
from onebox_common.model_config import ModelConfig

routes = web.RouteTableDef()


def model_object(config: ModelConfig) -> dict:
    installed = config.path.exists()
    created = int(config.path.stat().st_mtime) if installed else 0
    return {
        "id": config.name,
        "object": "model",
        "created": created,
        "owned_by": "onebox",
        # extensions, as LocalAI lists them: which backend serves it, and whether its weights are in place
        # (a listed model without them answers 404 `model_not_installed` until they are)
        "backend": config.backend,
        "installed": installed,
    }


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    models = request.app[REGISTRY].all()
    return web.json_response({"object": "list", "data": [model_object(m) for m in models]})


@routes.get("/v1/models/{model}")
async def get_model(request: web.Request) -> web.Response:
    return web.json_response(model_object(request.app[REGISTRY].get(model_name(request.match_info["model"]))))
