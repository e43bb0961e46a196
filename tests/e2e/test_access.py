"""API keys, CORS and request ids through the real `onebox run`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.conftest import CHAT_MODEL, REPO, OneboxServer

pytestmark = pytest.mark.e2e

KEY = "sk-onebox-test"
ORIGIN = "http://localhost:3000"


@pytest.fixture(scope="module")
def secured(models_dir: Path) -> Iterator[OneboxServer]:
    srv = OneboxServer(models_dir, "--api-keys", f"{KEY},sk-other", "--cors-allow-origins", ORIGIN)
    yield srv
    srv.stop()


def test_request_without_key_is_401(secured: OneboxServer) -> None:
    response = httpx.get(f"{secured.url}/v1/models")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["type"] == "authentication_error"


def test_openai_client_with_wrong_key_gets_authentication_error(secured: OneboxServer) -> None:
    client = openai.OpenAI(base_url=f"{secured.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_openai_client_with_key_is_served(secured: OneboxServer) -> None:
    client = openai.OpenAI(base_url=f"{secured.url}/v1", api_key=KEY, max_retries=0, timeout=120)
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    assert reply.choices[0].message.content is not None


def test_x_api_key_header_is_accepted(secured: OneboxServer) -> None:
    assert httpx.get(f"{secured.url}/v1/models", headers={"x-api-key": "sk-other"}).status_code == 200


def test_health_stays_open(secured: OneboxServer) -> None:
    assert httpx.get(f"{secured.url}/healthz").status_code == 200
    # no --preload, so the server is ready at once: 200 without a key, where a closed route would be 401
    ready = httpx.get(f"{secured.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_preflight_from_allowed_origin(secured: OneboxServer) -> None:
    response = httpx.options(
        f"{secured.url}/v1/chat/completions",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"},
    )  # fmt: skip
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in response.headers["access-control-allow-headers"]


def test_preflight_from_refused_origin(secured: OneboxServer) -> None:
    response = httpx.options(
        f"{secured.url}/v1/chat/completions",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


def test_request_id_is_echoed_and_logged(secured: OneboxServer) -> None:
    response = httpx.get(f"{secured.url}/v1/models", headers={"X-Request-ID": "e2e-trace-7"})
    assert response.headers["x-request-id"] == "e2e-trace-7"
    assert any("e2e-trace-7" in line and "refused" in line for line in secured.output().splitlines())


def test_public_bind_without_keys_refuses_to_start(models_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "frontend.cli", "run", "--address", "0.0.0.0:0",
         "--models-path", str(models_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--allow-insecure-public-bind" in result.stderr
