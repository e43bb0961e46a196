"""Hostile requests against the real server and model: refused with a 4xx, and the worker serving others
is the same process afterwards."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CHAT_MODEL, OneboxServer
from tests.media import silence

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "Say yes."}]
DEEP_GRAMMAR = "root ::= " + "(" * 20000 + '"a"' + ")" * 20000  # SIGSEGV'd the worker before the bound
HUGE_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "x", "schema": {"type": "string", "maxLength": 1000000}},
}


def chat(server: OneboxServer, **extra: object) -> httpx.Response:
    body = {"model": CHAT_MODEL, "messages": QUESTION, "max_tokens": 4, **extra}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)


@pytest.mark.parametrize("attack", [{"grammar": DEEP_GRAMMAR}, {"response_format": HUGE_SCHEMA}],
                         ids=["nested-grammar", "huge-maxLength"])  # fmt: skip
def test_a_grammar_that_would_crash_the_worker_is_refused_and_the_worker_lives(
    server: OneboxServer, attack: dict
) -> None:
    assert chat(server).status_code == 200
    (worker,) = server.workers(CHAT_MODEL)
    refused = chat(server, **attack)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] in {"grammar", "response_format.json_schema.schema"}
    assert chat(server).status_code == 200
    assert [w.pid for w in server.workers(CHAT_MODEL)] == [worker.pid]


def test_a_small_file_holding_hours_of_audio_is_refused_before_it_is_decoded(
    server: OneboxServer, tmp_path: Path
) -> None:
    bomb = silence(tmp_path / "bomb.flac", 31 * 60)  # a few hundred KB, longer than the 30-minute default
    assert bomb.stat().st_size < 1024 * 1024
    with bomb.open("rb") as audio:
        files = {"file": ("bomb.flac", audio, "audio/flac")}
        url = f"{server.url}/v1/audio/transcriptions"
        reply = httpx.post(url, data={"model": "whisper-base"}, files=files, timeout=120)
    assert reply.status_code == 400
    assert "longer than this server transcribes" in reply.json()["error"]["message"]
    (worker,) = server.workers("whisper-base")
    assert worker.memory_info().rss < 1024**3  # it never held the decoded hours
