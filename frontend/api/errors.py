"""API errors on the wire, in one place: OpenAI-shaped JSON, or an SSE error event once a stream started."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from frontend.api.limits import LimitExceeded, count_refusal
from frontend.api.sse import DONE, STREAM_KEY, frame
from frontend.errors import APIError, MethodNotAllowed, ModelNotFound, NotFound, PayloadTooLarge
from onebox_common.registry import UnknownModel

log = logging.getLogger("onebox.http")


def render(error: APIError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers)


def sse_error_event(error: APIError) -> bytes:
    """The same error, for a stream whose 200 status line has already gone out."""
    return frame(error.body()) + DONE


_HTTP_ERRORS: dict[int, type[APIError]] = {404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge}


def from_http_exception(exc: web.HTTPException) -> APIError:
    """aiohttp raises its own exceptions for routing and body-size failures; give them our shape."""
    kind = _HTTP_ERRORS.get(exc.status)
    if kind is PayloadTooLarge:
        return PayloadTooLarge("the request body is larger than this server accepts (--max-body-size)")
    if kind is not None:
        return kind(exc.reason or "not found")
    error = APIError(exc.reason or "error")
    error.status = exc.status
    error.type = "invalid_request_error" if exc.status < 500 else "server_error"
    error.code = None
    return error


def api_error_for(exc: UnknownModel) -> APIError:
    """The registry (onebox_common, which never imports the web layer) says what; this says which 404."""
    return ModelNotFound(
        f"the model {exc.name!r} does not exist; GET /v1/models lists the models this server offers",
        param="model",
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except APIError as error:
        if isinstance(error, LimitExceeded):
            count_refusal(request.app, error.limit)
        if error.status >= 500 or STREAM_KEY in request:
            log.warning("%s %s -> %d: %s", request.method, request.path, error.status, error.message)
        return await answer(request, error)
    except UnknownModel as exc:
        return await answer(request, api_error_for(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            count_refusal(request.app, "max_body_size")
        return await answer(request, from_http_exception(exc))
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return await answer(request, APIError("internal server error"))


async def answer(request: web.Request, error: APIError) -> web.StreamResponse:
    """JSON with the error's status; or, once a stream's 200 went out, its error event and [DONE].

    Writing a JSON response then would put a second status line into the open chunked body.
    """
    stream = request.get(STREAM_KEY)
    if stream is None:
        return render(error)
    return await stream.close_with(sse_error_event(error))
