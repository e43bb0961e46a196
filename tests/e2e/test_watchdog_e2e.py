"""The watchdog with the real server, real workers and the real small model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CHAT_MODEL, OneboxServer

pytestmark = pytest.mark.e2e


@pytest.fixture()
def one_backend_server(models_dir: Path) -> Iterator[OneboxServer]:
    srv = OneboxServer(models_dir, "--max-active-backends", "1", "--watchdog-idle-timeout", "0")
    yield srv
    srv.stop()


def complete(server: OneboxServer, model: str) -> None:
    body = {"model": model, "prompt": "Hello", "max_tokens": 2}
    response = httpx.post(f"{server.url}/v1/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text


def test_max_active_backends_one_keeps_only_the_most_recent(one_backend_server: OneboxServer) -> None:
    complete(one_backend_server, CHAT_MODEL)
    complete(one_backend_server, "smollm2-second")
    workers = httpx.get(f"{one_backend_server.url}/backend/monitor", timeout=10).json()["workers"]
    assert [w["model"] for w in workers] == ["smollm2-second"]
    assert workers[0]["resident_bytes"] > 0
    assert one_backend_server.workers(CHAT_MODEL) == []
    metrics = httpx.get(f"{one_backend_server.url}/metrics", timeout=10).text
    assert f'onebox_evictions_total{{model="{CHAT_MODEL}",reason="limit"}} 1.0' in metrics
    assert "evicting" in one_backend_server.output()
