"""Access control for the HTTP API: request ids, CORS, and API keys, as aiohttp middlewares.

Order matters: the request id comes first so that every later log line carries it; CORS preflights are
answered before the key check (browsers never send credentials on a preflight); the key check runs before
routing errors, so an unauthenticated client learns nothing about which routes exist.
"""

from __future__ import annotations

import contextvars
import hmac
import ipaddress
import logging
import re
import secrets
from pathlib import Path

from aiohttp import web

from frontend import browser_guard
from frontend.api.errors import Handler, render
from frontend.api.limits import count_refusal
from frontend.config import ServerConfig
from frontend.errors import APIError, Unauthorized

log = logging.getLogger("onebox.security")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is echoed and logged: only short, printable ids are trusted, anything else is replaced.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# What only an admin key may reach once admin keys are set: the gallery (installs and deletes models, and
# reads the index), the worker controls, and the metrics. /metrics is grouped with /backend/monitor, as
# the operator's view of every user's traffic and of the machine's memory, not something an inference
# key (handed to users and apps) needs to see.
ADMIN_PREFIXES = ("/models/", "/backend/")
ADMIN_PATHS = frozenset({"/metrics"})
CORS_ALLOWED_HEADERS = "Authorization, Content-Type, X-API-Key, X-Request-ID, OpenAI-Organization"
CORS_ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
CORS_MAX_AGE = "600"

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("onebox_request_id", default="-")
REQUEST_ID = web.RequestKey("request_id", str)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record: the id of the request being served, or "-" outside one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class AdminKeyRequired(APIError):
    status = 403
    type = "permission_error"
    code = "insufficient_permissions"


class CorsRefused(APIError):
    status = 403
    type = "invalid_request_error"
    code = "cors_origin_refused"


def parse_api_keys(spec: str) -> tuple[str, ...]:
    """`k1,k2`, or the path of a file with one key per line (blank lines and # comments skipped).

    Something written as a path (`/...`, `./...`, `~/...`) must be a readable file: taking a mistyped path
    for the key itself would lock every client out with a key nobody knows.
    """
    spec = spec.strip()
    if not spec:
        return ()
    path = Path(spec).expanduser()
    if path.is_file():
        lines = (line.strip() for line in path.read_text().splitlines())
        return tuple(line for line in lines if line and not line.startswith("#"))
    if spec.startswith(("/", "./", "../", "~/")):
        raise ValueError(f"no such key file: {spec}")
    return tuple(key.strip() for key in spec.split(",") if key.strip())


def parse_origins(spec: str) -> tuple[str, ...]:
    return tuple(origin.strip().rstrip("/") for origin in spec.split(",") if origin.strip())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def public_bind_refusal(config: ServerConfig) -> str | None:
    """Why the server must not start with this config, or None when it may."""
    has_keys = config.api_keys or config.admin_api_keys
    if has_keys or config.allow_insecure_public_bind or is_loopback(config.host):
        return None
    return (
        f"refusing to listen on {config.host} without API keys: anyone who can reach it could use it; "
        "set --api-keys (ONEBOX_API_KEYS), or pass --allow-insecure-public-bind"
    )


def key_matches(given: str, keys: tuple[str, ...]) -> bool:
    """Constant time in the key's content: every key is compared, none short-circuits."""
    # a header of non-UTF-8 bytes reaches us as surrogate escapes: compare those bytes, never fail on them
    given_bytes = given.encode("utf-8", "surrogateescape")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given_bytes, key.encode())
    return matched


def presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("X-API-Key") or None


def middlewares(config: ServerConfig) -> list:
    chain: list = [request_id_middleware, *browser_guard.middlewares(config, is_loopback(config.host))]
    if config.cors_allow_origins:
        chain.append(cors_middleware(config.cors_allow_origins))
    if config.api_keys or config.admin_api_keys:
        chain.append(auth_middleware(config.api_keys, config.admin_api_keys))
    return chain


def setup(app: web.Application, config: ServerConfig) -> None:
    """Headers every response needs, streamed ones included: added as the response is prepared."""
    app.on_response_prepare.append(echo_request_id)
    if config.cors_allow_origins:
        app.on_response_prepare.append(cors_headers(config.cors_allow_origins))


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if VALID_REQUEST_ID.fullmatch(given) else secrets.token_hex(16)
    request[REQUEST_ID] = request_id
    token = request_id_var.set(request_id)
    try:
        return await handler(request)
    finally:
        request_id_var.reset(token)


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if REQUEST_ID in request:
        response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID]


def allowed_origin(origin: str, allowed: tuple[str, ...]) -> str | None:
    """The Access-Control-Allow-Origin value for this origin, or None when it is not allowed."""
    if "*" in allowed:
        return "*"
    return origin if origin.rstrip("/") in allowed else None


def cors_middleware(allowed: tuple[str, ...]):  # type: ignore[no-untyped-def]
    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        if not (origin and preflight):
            return await handler(request)
        allow = allowed_origin(origin, allowed)
        if allow is None:
            log.info("CORS preflight from %s refused", origin)
            return render(CorsRefused(f"the origin {origin!r} is not allowed by --cors-allow-origins"))
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": allow,
                "Access-Control-Allow-Methods": CORS_ALLOWED_METHODS,
                "Access-Control-Allow-Headers": request.headers.get(
                    "Access-Control-Request-Headers", CORS_ALLOWED_HEADERS
                ),
                "Access-Control-Max-Age": CORS_MAX_AGE,
                "Vary": "Origin",
            },
        )

    return cors


def cors_headers(allowed: tuple[str, ...]):  # type: ignore[no-untyped-def]
    async def add(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        allow = allowed_origin(origin, allowed) if origin else None
        if allow is not None and "Access-Control-Allow-Origin" not in response.headers:
            response.headers["Access-Control-Allow-Origin"] = allow
            response.headers["Access-Control-Expose-Headers"] = REQUEST_ID_HEADER
            response.headers.add("Vary", "Origin")

    return add


def is_admin_route(request: web.Request) -> bool:
    """Judged by the route aiohttp matched (its canonical path), so no spelling of the URL slips past."""
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    return path in ADMIN_PATHS or path.startswith(ADMIN_PREFIXES)


def auth_middleware(keys: tuple[str, ...], admin_keys: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """Any key may use the inference routes; with admin keys set, only they may use the admin routes.

    Without admin keys every key may do everything, as before they existed.
    """
    every_key = keys + admin_keys

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        given = presented_key(request)
        if given is None:
            error: APIError = Unauthorized(
                "no API key: send it as 'Authorization: Bearer <key>' or in an 'x-api-key' header",
                code="missing_api_key",
            )
        elif not key_matches(given, every_key):
            error = Unauthorized("the API key is not valid for this server")
        elif admin_keys and is_admin_route(request) and not key_matches(given, admin_keys):
            log.info("%s %s refused: not an admin key", request.method, request.path)
            count_refusal(request.app, "admin_key_required")
            return render(AdminKeyRequired(f"{request.path} needs an admin key (--admin-api-keys)"))
        else:
            return await handler(request)
        error.headers = {"WWW-Authenticate": 'Bearer realm="onebox"'}
        log.info("%s %s refused: %s", request.method, request.path, error.code)
        return render(error)

    return auth
