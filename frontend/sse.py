"""Server-sent events for OpenAI streams."""

from __future__ import annotations

import json

from aiohttp import web

from frontend.errors import APIError, sse_error_event


class EventStream:
    """An SSE response that opens on its first event.

    Until then nothing has been sent, so an error raised before the first token still becomes a
    normal JSON error with the right status; after it, errors travel as an SSE error event.
    """

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._response: web.StreamResponse | None = None

    @property
    def started(self) -> bool:
        return self._response is not None

    async def send(self, payload: dict) -> None:
        response = await self._open()
        await response.write(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")

    async def finish(self) -> web.StreamResponse:
        response = await self._open()
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def fail(self, error: APIError) -> web.StreamResponse:
        assert self._response is not None
        await self._response.write(sse_error_event(error))
        await self._response.write_eof()
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
        return self._response
