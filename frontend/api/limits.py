"""What one request may cost the server: the errors that refuse more, and the count of those refusals.

Every limit is a flag (frontend/cli.py, README "Limits") carried on ServerConfig. Request models read it
while they are validated, through pydantic's validation context (parsing.parse), so that a request over a
limit is refused at the edge, before any worker starts. Each refusal is counted once, by limit, in
`onebox_requests_refused_total{reason}`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import ValidationInfo

from frontend.config import ServerConfig
from frontend.errors import APIError
from frontend.state import CONFIG, MANAGER

CONFIG_CONTEXT = "config"
DEFAULTS = ServerConfig()


class LimitExceeded(APIError):
    """A request beyond one of the server's limits; `limit` names it, for the refusal counter."""

    status = 400
    type = "invalid_request_error"
    code = "limit_exceeded"

    def __init__(
        self, message: str, *, limit: str, param: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message, param=param, headers=headers)
        self.limit = limit


class BodyTooLarge(LimitExceeded):
    status = 413
    code = "request_too_large"


class BodyReadTimeout(LimitExceeded):
    status = 408
    code = "body_read_timeout"


class TooManyStreams(LimitExceeded):
    status = 429
    type = "rate_limit_error"
    code = "too_many_streams"


def config_of(info: ValidationInfo) -> ServerConfig:
    """The server's config while a request model validates; the defaults when parsed without one (tests)."""
    context = info.context
    if isinstance(context, dict) and isinstance(context.get(CONFIG_CONTEXT), ServerConfig):
        return context[CONFIG_CONTEXT]
    return DEFAULTS


def server_config(app: web.Application) -> ServerConfig:
    """The app's config; the defaults for an app built without one (a bare app in tests)."""
    return app.get(CONFIG) or DEFAULTS


def count_refusal(app: web.Application, reason: str) -> None:
    manager = app.get(MANAGER)
    if manager is not None:
        manager.metrics.refused.labels(reason).inc()


def check_chars(total: int, limit: int, param: str) -> None:
    """Tokenizing costs worker CPU by the character (20 MB took 78 s): refuse texts over --max-input-chars."""
    if limit and total > limit:
        raise LimitExceeded(
            f"'{param}' holds {total} characters; this server takes at most {limit} per request "
            "(--max-input-chars)",
            limit="max_input_chars",
            param=param,
        )


@contextlib.asynccontextmanager
async def body_deadline(request: web.Request) -> AsyncIterator[None]:
    """The whole body must arrive within --body-read-timeout: a trickling client holds nothing longer."""
    seconds = server_config(request.app).body_read_timeout
    try:
        async with asyncio.timeout(seconds or None):
            yield
    except TimeoutError:
        raise BodyReadTimeout(
            f"the request body did not arrive within {seconds:g} s (--body-read-timeout)",
            limit="body_read_timeout",
            # the rest of the body is never read: the connection cannot carry another request
            headers={"Connection": "close"},
        ) from None


@dataclass
class StreamSlots:
    """Concurrent SSE streams per remote address: a client's open streams cannot starve everyone else's."""

    limit: int
    open: Counter[str] = field(default_factory=Counter)

    @contextlib.asynccontextmanager
    async def hold(self, client: str) -> AsyncIterator[None]:
        if self.limit and self.open[client] >= self.limit:
            raise TooManyStreams(
                f"this client already has {self.limit} streams open, the most this server allows "
                "(--max-streams-per-client); retry once one has finished",
                limit="max_streams_per_client",
                headers={"Retry-After": "2"},
            )
        self.open[client] += 1
        try:
            yield
        finally:
            self.open[client] -= 1
            if not self.open[client]:
                del self.open[client]


STREAM_SLOTS = web.AppKey("stream_slots", StreamSlots)


def stream_slot(request: web.Request, streamed: bool) -> contextlib.AbstractAsyncContextManager[None]:
    """Hold one of the client's stream slots while a streamed request runs; nothing for a plain one."""
    if not streamed:
        return contextlib.nullcontext()
    return request.app[STREAM_SLOTS].hold(request.remote or "-")
