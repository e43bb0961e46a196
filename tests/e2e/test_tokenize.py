"""POST /v1/tokenize and /v1/detokenize against the real model."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import CHAT_MODEL, OneboxServer

pytestmark = pytest.mark.e2e

TEXT = "The capital of France is Paris."


def test_tokenize_round_trips(server: OneboxServer) -> None:
    tokens = httpx.post(
        f"{server.url}/v1/tokenize", json={"model": CHAT_MODEL, "content": TEXT}, timeout=120
    ).json()["tokens"]
    assert tokens and all(isinstance(t, int) for t in tokens)
    text = httpx.post(
        f"{server.url}/v1/detokenize", json={"model": CHAT_MODEL, "tokens": tokens}, timeout=120
    ).json()["content"]
    assert text == TEXT


def test_tokenize_count_matches_completion_prompt_tokens(server: OneboxServer, client) -> None:
    tokens = httpx.post(
        f"{server.url}/v1/tokenize",
        json={"model": CHAT_MODEL, "content": "The capital of France is", "add_special": True},
        timeout=120,
    ).json()["tokens"]
    reply = client.completions.create(model=CHAT_MODEL, prompt="The capital of France is", max_tokens=1)
    assert reply.usage.prompt_tokens == len(tokens)


def test_detokenize_refuses_ids_outside_the_vocabulary(server: OneboxServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/detokenize", json={"model": CHAT_MODEL, "tokens": [10**9]}, timeout=120
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tokens"


def test_tokenize_needs_content(server: OneboxServer) -> None:
    response = httpx.post(f"{server.url}/v1/tokenize", json={"model": CHAT_MODEL}, timeout=120)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "content"
