"""Stopping without cutting anyone off: the first SIGTERM or Ctrl-C drains, a second one forces.

Draining: new requests get 503 with Retry-After (a load balancer or client retries elsewhere or later),
/readyz answers 503, and the requests already running finish, for up to --shutdown-timeout. Then, or at
once on a second signal, the workers are stopped, which ends any stream still open with an error event
and [DONE] (never a cut connection), and the server exits; the app's cleanup removes its socket folder.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_runner import GracefulExit

from frontend.api.errors import Handler, render
from frontend.errors import ServiceUnavailable

log = logging.getLogger("onebox.drain")

UNCOUNTED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_SECONDS = "5"


class Drain:
    """Counts the requests being served, and refuses new ones once draining."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self.forced = asyncio.Event()  # a second signal: stop waiting
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNCOUNTED_PATHS:
            return await handler(request)
        if self.draining:
            refusal = ServiceUnavailable(
                "the server is shutting down; retry shortly", code="shutting_down",
                headers={"Retry-After": RETRY_AFTER_SECONDS, "Connection": "close"},
            )  # fmt: skip
            return render(refusal)
        self.in_flight += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """True once no request runs; False at the timeout or when forced."""
        idle = asyncio.ensure_future(self._idle.wait())
        forced = asyncio.ensure_future(self.forced.wait())
        first = asyncio.FIRST_COMPLETED
        done, pending = await asyncio.wait({idle, forced}, timeout=timeout, return_when=first)
        for waiter in pending:
            waiter.cancel()
        return idle in done


DRAIN = web.AppKey("drain", Drain)


StopWorkers = Callable[[], Awaitable]


def install_signal_handlers(app: web.Application, timeout: float, stop_workers: StopWorkers) -> None:
    """SIGINT and SIGTERM: drain on the first, force on the second (installed by `onebox run` only)."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task] = []

    def on_signal(signum: int) -> None:
        drain = app[DRAIN]
        if not drain.draining:
            drain.draining = True
            tasks.append(loop.create_task(shut_down(drain, timeout, stop_workers)))
        elif not drain.forced.is_set():
            log.warning("%s again: stopping the %d running request(s) now", signal.Signals(signum).name,
                        drain.in_flight)  # fmt: skip
            drain.forced.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)


async def shut_down(drain: Drain, timeout: float, stop_workers: StopWorkers) -> None:
    if drain.in_flight:
        log.info("shutting down: waiting for %d running request(s), up to %.0fs (Ctrl-C again to force)",
                 drain.in_flight, timeout)  # fmt: skip
    else:
        log.info("shutting down")
    if not await drain.wait_idle(timeout) and not drain.forced.is_set():
        log.warning("%d request(s) still running after %.0fs: stopping them", drain.in_flight, timeout)
    # Stopped workers end their open streams with an error event; a moment lets those last writes go out.
    await stop_workers()
    await asyncio.sleep(0.2)
    asyncio.get_running_loop().call_soon(raise_graceful_exit)


def raise_graceful_exit() -> None:
    # Raised from a loop callback, GracefulExit (a SystemExit) leaves run_app's loop, which then runs the
    # app's cleanup: aiohttp's own way out, as its default signal handlers do.
    raise GracefulExit()
