"""The application factory: takes a parsed, frozen config, reads no argv or environment."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from frontend import security
from frontend.api import admin, embeddings, health, models, rerank, tokenize
from frontend.api.audio.routes import routes as audio_routes
from frontend.api.audio.routes import uploads_ctx
from frontend.api.errors import error_middleware
from frontend.api.gallery import installer_ctx as gallery_ctx
from frontend.api.gallery import routes as gallery_routes
from frontend.api.images.files import GENERATED, GeneratedFiles, generated_files_ctx
from frontend.api.images.routes import routes as image_routes
from frontend.api.limits import STREAM_SLOTS, StreamSlots
from frontend.api.text import chat, completions
from frontend.config import ServerConfig
from frontend.drain import DRAIN, Drain
from frontend.errors import APIError
from frontend.state import CONFIG, LISTENING, MANAGER, READY, REGISTRY
from frontend.workers.manager import ProcessManager, Spawn
from onebox_common.model_config import ModelConfig
from onebox_common.registry import ModelRegistry, UnknownModel

log = logging.getLogger("onebox.app")


def create_app(config: ServerConfig, spawn: Spawn | None = None) -> web.Application:
    drain = Drain()
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[*security.middlewares(config), drain.middleware, error_middleware],
    )
    app[DRAIN] = drain
    security.setup(app, config)
    app[CONFIG] = config
    app[REGISTRY] = ModelRegistry(config.models_path)
    app[READY] = {"ready": False, "pending": list(config.preload), "failed": {}}
    app[LISTENING] = asyncio.Event()  # set by whoever binds the sockets (the CLI), once they listen
    app[GENERATED] = GeneratedFiles(config.generated_path, config.generated_max_age)
    app[STREAM_SLOTS] = StreamSlots(config.max_streams_per_client)

    async def manager_ctx(app: web.Application) -> AsyncIterator[None]:
        app[MANAGER] = ProcessManager(config, app[REGISTRY], spawn)
        yield
        await app[MANAGER].stop_all()

    app.cleanup_ctx.extend([manager_ctx, watchdog_ctx, preload_ctx, gallery_ctx, uploads_ctx])
    app.router.add_routes(gallery_routes)
    app.router.add_routes(audio_routes)
    app.cleanup_ctx.append(generated_files_ctx)
    app.router.add_routes(image_routes)
    for module in (health, models, chat, completions, embeddings, rerank, tokenize, admin):
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
    app[REGISTRY].all()  # read every YAML now, so that a bad one is logged at start-up, not at first use
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
        except (APIError, UnknownModel) as error:
            log.error("preloading %s failed: %s", name, error)
            state["failed"][name] = str(error)
        state["pending"].remove(name)
    state["ready"] = True
    await app[LISTENING].wait()
    log.info("%s", ready_message(app[CONFIG], app[REGISTRY].all()))


def ready_message(config: ServerConfig, models: list[ModelConfig]) -> str:
    """What a new user needs next: where to point a client, and the model names to ask for."""
    host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{host}:{config.port}"
    served = ", ".join(f"{m.name} ({m.backend})" for m in models)
    if not served:
        served = f"none yet: add a YAML to {config.models_path} or see `onebox models available`"
    # one line, as every log entry: the address, the base URL clients take, and the names they ask for
    return f"ready on {url}, OpenAI-compatible base URL {url}/v1; models: {served}"
