"""Worker processes under concurrency, crashes, disconnects and shutdown (real server, real model)."""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from tests.e2e.conftest import CHAT_MODEL, OneboxServer

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "Tell me about the sea."}]


def chat(server: OneboxServer, model: str = CHAT_MODEL, max_tokens: int = 16) -> httpx.Response:
    body = {"model": model, "messages": QUESTION, "max_tokens": max_tokens, "ignore_eos": True}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)


def open_stream(server: OneboxServer, max_tokens: int):  # type: ignore[no-untyped-def]
    body = {
        "model": CHAT_MODEL,
        "messages": QUESTION,
        "max_tokens": max_tokens,
        "stream": True,
        "ignore_eos": True,
    }
    return httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=120)


def test_concurrent_first_requests_start_one_worker(fresh_server: OneboxServer) -> None:
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: chat(fresh_server), range(4)))
    assert [r.status_code for r in replies] == [200] * 4
    assert all(r.json()["usage"]["completion_tokens"] == 16 for r in replies)
    assert len(fresh_server.workers(CHAT_MODEL)) == 1


def test_requests_to_different_models_run_side_by_side(fresh_server: OneboxServer) -> None:
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda m: chat(fresh_server, m, 48), [CHAT_MODEL, "smollm2-second"] * 2))
    assert [r.status_code for r in replies] == [200] * 4, [r.text for r in replies]
    assert len(fresh_server.workers(CHAT_MODEL)) == 1
    assert len(fresh_server.workers("smollm2-second")) == 1


def test_worker_killed_mid_stream_ends_the_stream_with_an_error_then_respawns(
    fresh_server: OneboxServer,
) -> None:
    assert chat(fresh_server).status_code == 200
    (worker,) = fresh_server.workers(CHAT_MODEL)
    with open_stream(fresh_server, 1500) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        worker.kill()
        events = [line for line in lines if line]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][len("data: ") :])["error"]
    assert "SIGKILL" in error["message"]
    assert chat(fresh_server).status_code == 200
    (respawned,) = fresh_server.workers(CHAT_MODEL)
    assert respawned.pid != worker.pid


def test_worker_killed_between_requests_is_respawned(fresh_server: OneboxServer) -> None:
    assert chat(fresh_server).status_code == 200
    (worker,) = fresh_server.workers(CHAT_MODEL)
    worker.kill()
    worker.wait(5)
    assert chat(fresh_server).status_code == 200


def test_client_disconnect_cancels_generation(fresh_server: OneboxServer) -> None:
    assert chat(fresh_server).status_code == 200
    with open_stream(fresh_server, 1900) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    # 1900 tokens take many seconds on these CPUs; served "at once" means the worker dropped them.
    started = time.monotonic()
    assert chat(fresh_server, max_tokens=4).status_code == 200
    assert time.monotonic() - started < 12


def test_preload_loads_before_ready_while_health_answers_at_once(models_dir) -> None:
    server = OneboxServer(models_dir, "--preload", CHAT_MODEL)
    try:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        assert len(server.workers(CHAT_MODEL)) == 1
    finally:
        server.stop()


def test_sigterm_stops_every_worker(fresh_server: OneboxServer) -> None:
    assert chat(fresh_server).status_code == 200
    assert chat(fresh_server, "smollm2-second").status_code == 200
    workers = fresh_server.workers()
    assert len(workers) == 2
    fresh_server.process.send_signal(signal.SIGTERM)
    assert fresh_server.process.wait(15) == 0
    _, alive = psutil.wait_procs(workers, timeout=1)
    assert alive == []


def test_workers_exit_when_the_server_is_killed(fresh_server: OneboxServer) -> None:
    assert chat(fresh_server).status_code == 200
    workers = fresh_server.workers()
    fresh_server.process.kill()
    fresh_server.process.wait(5)
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert alive == []


def test_worker_command_line_names_its_model(fresh_server: OneboxServer) -> None:
    assert chat(fresh_server).status_code == 200
    (worker,) = fresh_server.workers(CHAT_MODEL)
    assert CHAT_MODEL in " ".join(worker.cmdline())
