"""The gallery over HTTP: GET /models/available, POST /models/apply, GET /models/jobs[/{uuid}],
POST /models/jobs/{uuid}/cancel, POST /models/delete/{name}.

Installs run as asyncio tasks owned by the Installer on the app; its cleanup context cancels them.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from frontend.api.parsing import parse_body
from frontend.config import ServerConfig
from frontend.errors import APIError, InvalidRequest, NotFound
from frontend.state import CONFIG, MANAGER
from gallery.index import AlreadyInstalled, EntryNotFound, GalleryError, GallerySource, parse_galleries
from gallery.installer import Installer
from gallery.policy import DownloadPolicy

INSTALLER = web.AppKey("installer", Installer)
routes = web.RouteTableDef()


class Conflict(APIError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class ApplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = None  # gallery@name
    url: str | None = None  # an entry (.yaml) or a weights file
    name: str | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    overrides: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> ApplyRequest:
        if (self.id is None) == (self.url is None):
            raise ValueError("give either 'id' (gallery@name) or 'url'")
        return self


def galleries(config: ServerConfig) -> tuple[GallerySource, ...]:
    return tuple(GallerySource(name, location) for name, location in config.galleries) or parse_galleries("")


def download_policy(config: ServerConfig) -> DownloadPolicy:
    return DownloadPolicy(
        allow_private=config.allow_private_downloads,
        allow_http=config.allow_http_downloads,
        max_bytes=config.max_download_bytes,
        allow_unverified=config.allow_unverified_installs,
    )


async def installer_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    installer = Installer(
        config.models_path, galleries(config), config.gallery_file_root, download_policy(config)
    )
    async with installer:
        app[INSTALLER] = installer
        yield


def api_error(error: GalleryError) -> APIError:
    if isinstance(error, EntryNotFound):
        return NotFound(str(error), code="model_not_found")
    if isinstance(error, AlreadyInstalled):
        return Conflict(str(error))
    return InvalidRequest(str(error), code="gallery_error")


Handler = Callable[[web.Request], Awaitable[web.Response]]


def gallery_errors(handler: Handler) -> Handler:
    """The gallery speaks GalleryError; its routes answer with the matching API error."""

    @functools.wraps(handler)
    async def translated(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except GalleryError as error:
            raise api_error(error) from None

    return translated


@routes.get("/models/available")
async def available(request: web.Request) -> web.Response:
    return web.json_response(await request.app[INSTALLER].available())


@routes.post("/models/apply")
@gallery_errors
async def apply(request: web.Request) -> web.Response:
    body = await parse_body(request, ApplyRequest)
    installer = request.app[INSTALLER]
    if body.id is not None:
        gallery, entry = await installer.find(body.id)
        source = f"{gallery}@{entry.name}"
    else:
        assert body.url is not None
        entry, source = await installer.entry_from_url(body.url, body.name, body.sha256), body.url
    job = installer.apply(entry, source, body.name, body.overrides)
    return web.json_response({"uuid": job.uuid, "status": job.phase.value}, status=202)


@routes.get("/models/jobs")
async def jobs(request: web.Request) -> web.Response:
    return web.json_response([job.describe() for job in request.app[INSTALLER].jobs()])


@routes.get("/models/jobs/{uuid}")
@gallery_errors
async def job(request: web.Request) -> web.Response:
    return web.json_response(request.app[INSTALLER].get(request.match_info["uuid"]).describe())


@routes.post("/models/jobs/{uuid}/cancel")
@gallery_errors
async def cancel(request: web.Request) -> web.Response:
    return web.json_response(request.app[INSTALLER].cancel(request.match_info["uuid"]).describe())


@routes.post("/models/delete/{name}")
@gallery_errors
async def delete(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    request.app[INSTALLER].remove(name)
    await request.app[MANAGER].stop(name, "removed")
    return web.json_response({"name": name, "deleted": True})
