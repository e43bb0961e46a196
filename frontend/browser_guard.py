"""Defences against requests that a web page sends through the user's browser.

Without API keys (the default, on loopback) any page the user visits can reach 127.0.0.1. Two ways in:
- DNS rebinding: a page on evil.example points its own name at 127.0.0.1 and calls the API as if
  same-origin; the Host header still says evil.example. On a loopback bind only names of this machine
  (and --allowed-hosts) are answered, as Jupyter and Ollama do.
- Cross-site writes: a page may send a "simple" POST (text/plain or a form) to another origin without a
  CORS preflight. JSON routes refuse non-JSON bodies (frontend/api/parsing.py); on top of that the routes
  that change the server (install, delete, load, stop) refuse a foreign Origin unless --cors-allow-origins
  allows it.
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

from aiohttp import web

from frontend.api.errors import Handler, render
from frontend.config import ServerConfig
from frontend.errors import APIError

log = logging.getLogger("onebox.security")

STATE_CHANGING_PREFIXES = ("/models/", "/backend/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HostRefused(APIError):
    status = 403
    type = "invalid_request_error"
    code = "host_not_allowed"


class CrossOriginRefused(APIError):
    status = 403
    type = "invalid_request_error"
    code = "cross_origin_refused"


def host_name(host_header: str) -> str:
    """'Example.com:8080' -> 'example.com'; '[::1]:8080' -> '::1'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host_header: str, bind_host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a request naming this host is meant for this server (pure)."""
    name = host_name(host_header)
    if "*" in allowed or name in allowed or name == bind_host.lower():
        return True
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def origin_allowed(origin: str, host_header: str, allowed_origins: tuple[str, ...]) -> bool:
    """Same origin as the server the request reached, or one the operator allowed (pure)."""
    if "*" in allowed_origins or origin.rstrip("/") in allowed_origins:
        return True
    return urlsplit(origin).netloc.lower() == host_header.strip().lower()


def middlewares(config: ServerConfig, bound_to_loopback: bool) -> list:
    # A public bind needs API keys (frontend/security.py), which a page cannot guess; a loopback one does not.
    chain: list = [cross_origin_middleware(config.cors_allow_origins)]
    if bound_to_loopback:
        chain.insert(0, host_middleware(config.host, config.allowed_hosts))
    return chain


def host_middleware(bind_host: str, allowed: tuple[str, ...]):  # type: ignore[no-untyped-def]
    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if host_allowed(host, bind_host, allowed):
            return await handler(request)
        log.warning("%s %s refused: Host %r is not this server", request.method, request.path, host)
        return render(HostRefused(f"this server does not answer to the host {host!r}; see --allowed-hosts"))

    return check_host


def cross_origin_middleware(allowed_origins: tuple[str, ...]):  # type: ignore[no-untyped-def]
    @web.middleware
    async def check_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        changes_state = request.method not in SAFE_METHODS and request.path.startswith(
            STATE_CHANGING_PREFIXES
        )
        if not changes_state or not origin or origin_allowed(origin, request.host, allowed_origins):
            return await handler(request)
        log.warning("%s %s refused: cross-origin from %s", request.method, request.path, origin)
        return render(CrossOriginRefused(f"{request.path} cannot be called from the web page at {origin!r}"))

    return check_origin
