"""GET /healthz (the process is alive) and GET /readyz (it takes requests: every --preload model loaded)."""

from __future__ import annotations

from aiohttp import web

from frontend.drain import DRAIN
from frontend.state import READY

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    state = request.app[READY]
    if request.app[DRAIN].draining:
        return web.json_response({"status": "draining"}, status=503)
    if not state["ready"]:
        return web.json_response({"status": "starting", "pending": state["pending"]}, status=503)
    if state["failed"]:
        # a model the operator asked to have loaded is not: not ready, and the reason says which and why
        return web.json_response({"status": "failed", "failed": state["failed"]}, status=503)
    return web.json_response({"status": "ready"})
