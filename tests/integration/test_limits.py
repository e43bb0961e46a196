"""Issue 19, hostile input: each case refused with a clear 4xx in OpenAI's shape, before any worker starts,
and counted in onebox_requests_refused_total by the limit that refused it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from aiohttp import FormData
from aiohttp.test_utils import make_mocked_request

from frontend.api import parsing
from frontend.api.images.routes import image_item
from frontend.app import create_app
from frontend.config import ServerConfig
from frontend.state import MANAGER

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def config(models_path: Path, tmp_path: Path) -> ServerConfig:
    return ServerConfig(
        models_path=models_path,
        generated_path=tmp_path / "generated",
        worker_start_timeout=15,
        worker_load_timeout=15,
        worker_stop_grace=1,
        max_input_chars=1000,
        max_form_fields=8,
        max_form_text_bytes=100_000,
        body_read_timeout=0.5,
        max_streams_per_client=1,
    )


@pytest.fixture
async def client(aiohttp_client, config, spawner):  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(config, spawner))


def refusals(client, reason: str) -> float:  # type: ignore[no-untyped-def]
    registry = client.app[MANAGER].metrics.registry
    return registry.get_sample_value("onebox_requests_refused_total", {"reason": reason}) or 0.0


async def error_of(response) -> dict:  # type: ignore[no-untyped-def]
    return (await response.json())["error"]


async def test_400_prompts_times_n_16_is_refused_before_any_worker(client, write_model, spawner) -> None:
    write_model("echo")
    body = {"model": "echo", "prompt": ["hi"] * 400, "n": 16, "max_tokens": 1}
    response = await client.post("/v1/completions", json=body)
    assert response.status == 400
    error = await error_of(response)
    assert error["code"] == "limit_exceeded" and "--max-choices-per-request" in error["message"]
    assert spawner.count == 0
    assert refusals(client, "max_choices_per_request") == 1


async def test_a_body_with_tools_is_validated_off_the_event_loop(client, write_model, monkeypatch) -> None:
    write_model("echo")
    threads: list[str] = []
    real = parsing.decode_and_parse

    def spy(*args):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(parsing, "decode_and_parse", spy)
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    await client.post(CHAT, json={"model": "nope", "messages": HELLO})
    await client.post(CHAT, json={"model": "nope", "messages": HELLO, "tools": [tool]})
    assert threads[0] == threading.main_thread().name  # a small plain body: no thread hop
    assert threads[1] != threading.main_thread().name


async def test_12000_tools_are_refused(client) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = {"model": "echo", "messages": HELLO, "tools": [tool] * 12_000, "tool_choice": "required"}
    response = await client.post(CHAT, json=body)
    assert response.status == 400
    assert (await error_of(response))["param"] == "tools"


async def test_top_k_of_2_to_the_31_is_a_400_not_a_500(client, write_model, spawner) -> None:
    write_model("echo")
    response = await client.post(CHAT, json={"model": "echo", "messages": HELLO, "top_k": 2**31})
    assert response.status == 400
    assert (await error_of(response))["param"] == "top_k"
    assert spawner.count == 0


async def test_an_embeddings_token_id_of_2_to_the_31_is_a_400(client, write_model) -> None:
    write_model("emb", backend="embeddings")
    response = await client.post("/v1/embeddings", json={"model": "emb", "input": [[1, 2**31]]})
    assert response.status == 400
    assert (await error_of(response))["param"] == "input[0][1]"


async def test_tokenize_over_the_character_limit_is_refused(client, write_model, spawner) -> None:
    write_model("echo")
    response = await client.post("/v1/tokenize", json={"model": "echo", "content": "x" * 1001})
    assert response.status == 400
    assert "--max-input-chars" in (await error_of(response))["message"]
    assert spawner.count == 0


async def test_embeddings_over_the_character_limit_are_refused(client, write_model) -> None:
    write_model("emb", backend="embeddings")
    response = await client.post("/v1/embeddings", json={"model": "emb", "input": ["x" * 600, "y" * 600]})
    assert response.status == 400
    assert refusals(client, "max_input_chars") == 1


def audio_form(fields: list[tuple[str, str]]) -> FormData:
    form = FormData()
    form.add_field("file", b"RIFF", filename="a.wav", content_type="audio/wav")
    for name, value in fields:
        form.add_field(name, value)
    return form


async def test_a_form_with_too_many_fields_is_refused(client) -> None:
    form = audio_form([("model", "whisper")] + [(f"f{i}", "x") for i in range(20)])
    response = await client.post("/v1/audio/transcriptions", data=form)
    assert response.status == 400
    assert "--max-form-fields" in (await error_of(response))["message"]


async def test_form_text_fields_over_the_total_are_refused(client) -> None:
    form = audio_form([("model", "whisper")] + [(f"f{i}", "x" * 60_000) for i in range(3)])
    response = await client.post("/v1/audio/transcriptions", data=form)
    assert response.status == 400
    assert refusals(client, "max_form_text_size") == 1


async def test_a_multipart_part_header_over_8_kb_is_a_400(client) -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\nX-Long: {"a" * 9000}\r\n\r\n'
        f"whisper\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = await client.post("/v1/audio/transcriptions", data=body, headers=headers)
    assert response.status == 400
    assert "malformed" in (await error_of(response))["message"]


async def test_a_body_that_trickles_is_answered_408(client) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        head = f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        writer.write((head + "Content-Length: 100\r\n\r\n{").encode())
        await writer.drain()
        async with asyncio.timeout(5):
            for _ in range(3):  # a byte every 0.3 s: never idle for long, never finished in time
                await asyncio.sleep(0.3)
                writer.write(b" ")
                await writer.drain()
            status_line = await reader.readline()
    finally:
        writer.close()
    assert b" 408 " in status_line
    assert refusals(client, "body_read_timeout") == 1


async def test_a_clients_second_stream_gets_429(client, write_model) -> None:
    write_model("slow", behaviour={"token_delay": 0.2})
    body = {"model": "slow", "messages": [{"role": "user", "content": "a b c d e f"}], "stream": True}
    first = await client.post(CHAT, json=body)
    assert first.status == 200
    await first.content.readline()  # the first stream is open and generating
    second = await client.post(CHAT, json=body)
    assert second.status == 429
    assert second.headers["Retry-After"]
    assert (await error_of(second))["code"] == "too_many_streams"
    first.close()


async def test_chat_to_an_embeddings_model_is_refused_before_its_worker_starts(
    client, write_model, spawner
) -> None:
    write_model("emb", backend="embeddings")
    response = await client.post(CHAT, json={"model": "emb", "messages": HELLO})
    assert response.status == 400
    error = await error_of(response)
    assert error["message"] == (
        "model 'emb' is an embeddings model (it serves /v1/embeddings); /v1/chat/completions needs a chat "
        "model (backend llama-cpp)"
    )
    assert (error["param"], error["code"]) == ("model", "unsupported_by_model")
    assert spawner.count == 0


async def test_embeddings_from_a_chat_model_are_refused_before_its_worker_starts(
    client, write_model, spawner
) -> None:
    write_model("echo")
    response = await client.post("/v1/embeddings", json={"model": "echo", "input": "hi"})
    assert response.status == 400
    assert "is a chat model" in (await error_of(response))["message"]
    assert spawner.count == 0


@pytest.mark.parametrize(
    ("public_url", "prefix"),
    [("https://ai.example.com", "https://ai.example.com/v1/images/files/"), ("", "http://127.0.0.1:8080/")],
)
def test_image_urls_ignore_a_forged_host_header(config, public_url: str, prefix: str) -> None:
    app = create_app(ServerConfig(models_path=config.models_path, generated_path=config.generated_path,
                                  public_url=public_url))  # fmt: skip
    request = make_mocked_request("POST", "/v1/images/generations", headers={"Host": "evil.example"}, app=app)
    url = image_item(request, b"\x89PNG", "url")["url"]
    assert url.startswith(prefix) and "evil" not in url
