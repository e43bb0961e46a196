"""Server-sent events: the framing, and serving a stream of payloads once, whatever endpoint renders them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing

from aiohttp import web

from frontend.api.limits import count_refusal, server_config

log = logging.getLogger("onebox.sse")

DONE = b"data: [DONE]\n\n"


def frame(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class ClientNotReading(Exception):
    """A streamed write waited longer than --stream-write-timeout for the client to read."""


class EventStream:
    """An SSE response that opens on its first event.

    Until then nothing has been sent, so an error raised before the first token still becomes a
    normal JSON error with the right status; after it, errors travel as an SSE error event.
    """

    def __init__(self, request: web.Request, write_timeout: float = 0.0) -> None:
        self._request = request
        self._response: web.StreamResponse | None = None
        self._write_timeout = write_timeout or None  # 0: a write may wait for the client forever

    @property
    def started(self) -> bool:
        return self._response is not None

    @property
    def response(self) -> web.StreamResponse | None:
        return self._response

    async def send(self, payload: dict) -> None:
        """Raises ClientNotReading when a write waited write_timeout (it waits once the socket's buffers
        are full), so that a client that never reads cannot hold a generation forever."""
        response = await self._open()
        try:
            async with asyncio.timeout(self._write_timeout):
                await response.write(frame(payload))
        except TimeoutError:
            raise ClientNotReading from None

    async def finish(self) -> web.StreamResponse:
        response = await self._open()
        await response.write(DONE)
        await response.write_eof()
        return response

    async def close_with(self, last: bytes) -> web.StreamResponse:
        """End a started stream with `last` (an error event and [DONE]); a client already gone is let be."""
        assert self._response is not None
        try:
            await self._response.write(last)
            await self._response.write_eof()
        except ConnectionResetError:
            log.info("client went away before the stream's error event could be sent")
        return self._response

    async def _open(self) -> web.StreamResponse:
        if self._response is None:
            response = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",
                }
            )
            await response.prepare(self._request)
            self._response = response
            self._request[STREAM_KEY] = self
        return self._response


# Set on the request once the 200 has gone out, so that error_middleware ends the open stream instead of
# writing a second HTTP response into its body.
STREAM_KEY = web.RequestKey("onebox_stream", EventStream)


async def serve_sse(request: web.Request, payloads: AsyncGenerator[dict, None]) -> web.StreamResponse:
    """Send every payload as an event, then [DONE].

    An APIError raised after the stream started is left to error_middleware, which ends the stream with
    an SSE error event (the one place that renders errors). A client that went away stops the generation:
    closing `payloads` closes the generator chain down to the worker's call.
    """
    stream = EventStream(request, server_config(request.app).stream_write_timeout)
    try:
        async with aclosing(payloads):
            async for payload in payloads:
                await stream.send(payload)
        return await stream.finish()
    except ConnectionResetError:
        log.info("client went away mid-stream on %s; generation stopped", request.path)
        return stream.response or web.Response(status=499)
    except ClientNotReading:
        # the client stopped reading: nothing more can reach it, so the connection goes with the stream
        log.warning("client on %s read nothing for too long; stream ended, generation stopped", request.path)
        count_refusal(request.app, "stream_write_timeout")
        if request.transport is not None:
            request.transport.abort()
        return stream.response or web.Response(status=499)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            log.info("request on %s cancelled mid-stream; generation stopped", request.path)
        raise
