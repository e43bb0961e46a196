"""The application factory: takes a parsed, frozen config, reads no argv or environment."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from frontend import backend_admin, chat, completions, embeddings, health, models, rerank, security, tokenize
from frontend.audio import routes as audio_routes
from frontend.audio import uploads_ctx
from frontend.config import ModelRegistry, ServerConfig
from frontend.errors import APIError, error_middleware
from frontend.gallery_api import installer_ctx as gallery_ctx
from frontend.gallery_api import routes as gallery_routes
from frontend.generated_files import GENERATED, GeneratedFiles, generated_files_ctx
from frontend.images import routes as image_routes
from frontend.manager import ProcessManager, Spawn
from frontend.state import CONFIG, MANAGER, READY, REGISTRY

log = logging.getLogger("onebox.app")


def create_app(config: ServerConfig, spawn: Spawn | None = None) -> web.Application:
    app = web.Application(
        client_max_size=config.max_body_bytes, middlewares=[*security.middlewares(config), error_middleware]
    )
    security.setup(app, config)
    app[CONFIG] = config
    app[REGISTRY] = ModelRegistry(config.models_path)
    app[READY] = {"ready": False, "pending": list(config.preload)}
    app[GENERATED] = GeneratedFiles(config.generated_path, config.generated_max_age)

    async def manager_ctx(app: web.Application) -> AsyncIterator[None]:
        app[MANAGER] = ProcessManager(config, app[REGISTRY], spawn)
        yield
        await app[MANAGER].stop_all()

    app.cleanup_ctx.extend([manager_ctx, watchdog_ctx, preload_ctx, gallery_ctx, uploads_ctx])
    app.router.add_routes(gallery_routes)
    app.router.add_routes(audio_routes)
    app.cleanup_ctx.append(generated_files_ctx)
    app.router.add_routes(image_routes)
    for module in (health, models, chat, completions, embeddings, rerank, tokenize, backend_admin):
        app.router.add_routes(module.routes)
    return app


async def watchdog_ctx(app: web.Application) -> AsyncIterator[None]:
    """The manager's watchdog rounds (idle, hung and crashed workers, the memory floor) in the background."""
    task = asyncio.create_task(app[MANAGER].watch())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def preload_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load the --preload models in the background: /healthz answers at once, /readyz once they are up."""
    task = asyncio.create_task(preload(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def preload(app: web.Application) -> None:
    state = app[READY]
    for name in list(state["pending"]):
        try:
            await app[MANAGER].ensure_ready(name)
        except APIError as error:
            log.error("preloading %s failed: %s", name, error.message)
        state["pending"].remove(name)
    state["ready"] = True
