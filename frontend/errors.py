"""Typed API errors, rendered in one place as OpenAI-shaped JSON or as an SSE error event."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("onebox.http")


class APIError(Exception):
    status = 500
    type = "server_error"
    code: str | None = "internal_error"

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class Unauthorized(APIError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class NotFound(APIError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(APIError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class ServiceUnavailable(APIError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class WorkerFailed(APIError):
    """A model's worker could not start, load, or finish a request; the message carries the cause."""

    code = "worker_failed"


def render(error: APIError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers)


def sse_error_event(error: APIError) -> bytes:
    """The same error, for a stream whose 200 status line has already gone out."""
    return b"data: " + json.dumps(error.body()).encode() + b"\n\ndata: [DONE]\n\n"


_HTTP_ERRORS: dict[int, type[APIError]] = {404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge}


def from_http_exception(exc: web.HTTPException) -> APIError:
    """aiohttp raises its own exceptions for routing and body-size failures; give them our shape."""
    kind = _HTTP_ERRORS.get(exc.status)
    if kind is PayloadTooLarge:
        return PayloadTooLarge("the request body is larger than this server accepts")
    if kind is not None:
        return kind(exc.reason or "not found")
    error = APIError(exc.reason or "error")
    error.status = exc.status
    error.type = "invalid_request_error" if exc.status < 500 else "server_error"
    error.code = None
    return error


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except APIError as error:
        if error.status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.path, error.status, error.message)
        return render(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return render(from_http_exception(exc))
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return render(APIError("internal server error"))
