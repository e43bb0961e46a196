"""Stopping the real server: SIGTERM drains (running requests finish, new ones get 503), a second signal or
the shutdown timeout stops what still runs with an SSE error event, and nothing is left behind."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.conftest import CHAT_MODEL, OneboxServer

pytestmark = pytest.mark.e2e


class Stream(threading.Thread):
    """A long streamed chat read in the background; `events` are its SSE data lines."""

    def __init__(self, server: OneboxServer, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.url, self.max_tokens = f"{server.url}/v1/chat/completions", max_tokens
        self.events: list[str] = []
        self.started = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        messages = [{"role": "user", "content": "Tell me a long story."}]
        body = {"model": CHAT_MODEL, "stream": True, "max_tokens": self.max_tokens, "ignore_eos": True,
                "temperature": 0, "messages": messages}  # fmt: skip
        try:
            with httpx.stream("POST", self.url, json=body, timeout=120) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line.removeprefix("data: "))
                        self.started.set()
        except httpx.HTTPError as error:  # a protocol error or a cut connection: what must not happen
            self.error = error


def start_stream(server: OneboxServer, max_tokens: int) -> Stream:
    stream = Stream(server, max_tokens)
    stream.start()
    assert stream.started.wait(60), server.output()
    return stream


def runtime_dirs(server: OneboxServer) -> set[Path]:
    """The folders of the workers' sockets (unix:///tmp/onebox-xxx/w1.sock)."""
    found = set()
    for worker in server.workers():
        address = worker.cmdline()[worker.cmdline().index("--address") + 1]
        found.add(Path(address.removeprefix("unix://")).parent)
    return found


def test_sigterm_lets_a_running_stream_finish_and_refuses_new_work(models_dir: Path) -> None:
    server = OneboxServer(models_dir)
    try:
        stream = start_stream(server, max_tokens=200)
        workers = server.workers()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = httpx.get(f"{server.url}/v1/models", timeout=10)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"]
        assert refused.json()["error"]["code"] == "shutting_down"
        assert httpx.get(f"{server.url}/readyz", timeout=10).json() == {"status": "draining"}
        stream.join(120)
        assert stream.error is None
        assert stream.events[-1] == "[DONE]"
        assert all("error" not in json.loads(e) for e in stream.events[:-1])
        assert server.process.wait(60) == 0
        assert not [w for w in workers if w.is_running()]
    finally:
        server.stop()


def test_a_stream_still_running_at_the_timeout_ends_with_an_error_event(models_dir: Path) -> None:
    server = OneboxServer(models_dir, "--shutdown-timeout", "1s")
    try:
        stream = start_stream(server, max_tokens=2000)
        server.process.send_signal(signal.SIGTERM)
        stream.join(60)
        assert stream.error is None
        assert stream.events[-1] == "[DONE]"
        assert "shutting down" in json.loads(stream.events[-2])["error"]["message"]
        assert server.process.wait(30) == 0
    finally:
        server.stop()


def test_a_second_ctrl_c_stops_at_once_and_leaves_nothing_behind(models_dir: Path) -> None:
    server = OneboxServer(models_dir)
    try:
        stream = start_stream(server, max_tokens=2000)
        folders, workers = runtime_dirs(server), server.workers()
        server.process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        server.process.send_signal(signal.SIGINT)
        stream.join(30)
        assert stream.error is None
        assert stream.events[-1] == "[DONE]"
        assert "error" in json.loads(stream.events[-2])
        assert server.process.wait(30) == 0
        assert psutil.wait_procs(workers, timeout=10)[1] == []
        assert folders and not any(folder.exists() for folder in folders)
        assert "Ctrl-C again to force" in server.output()
    finally:
        server.stop()
