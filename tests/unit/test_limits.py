"""Hostile-input limits decided while parsing, the stream bookkeeping, and which model serves which route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from frontend.api import capabilities
from frontend.api.embeddings import EmbeddingsRequest
from frontend.api.images.routes import url_base
from frontend.api.limits import LimitExceeded, StreamSlots, TooManyStreams
from frontend.api.parsing import parse
from frontend.api.sse import EventStream, serve_sse
from frontend.api.text.chat import ChatCompletionRequest
from frontend.api.text.completions import CompletionRequest
from frontend.api.tokenize import TokenizeRequest
from frontend.config import ServerConfig
from frontend.errors import InvalidRequest
from frontend.state import CONFIG
from onebox_common.model_config import ModelConfig

HELLO = [{"role": "user", "content": "hi"}]


def test_400_prompts_times_16_is_refused_at_parse() -> None:
    with pytest.raises(LimitExceeded) as caught:
        parse(CompletionRequest, {"model": "m", "prompt": ["x"] * 400, "n": 16})
    assert caught.value.limit == "max_choices_per_request"
    assert "6400 choices" in caught.value.message and "--max-choices-per-request" in caught.value.message


def test_the_choice_limit_comes_from_the_server_config() -> None:
    config = ServerConfig(max_choices_per_request=4)
    parse(CompletionRequest, {"model": "m", "prompt": ["x"] * 2, "n": 2}, config)
    with pytest.raises(LimitExceeded):
        parse(CompletionRequest, {"model": "m", "prompt": ["x"] * 5}, config)
    with pytest.raises(LimitExceeded):
        parse(ChatCompletionRequest, {"model": "m", "messages": HELLO, "n": 5}, config)


def test_too_many_tools_are_refused_before_any_schema_is_compiled() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = {"model": "m", "messages": HELLO, "tools": [tool] * 12_000, "tool_choice": "required"}
    with pytest.raises(LimitExceeded) as caught:
        parse(ChatCompletionRequest, body)
    assert (caught.value.limit, caught.value.param) == ("max_tools", "tools")


def test_top_k_beyond_int32_is_a_400_naming_it() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(ChatCompletionRequest, {"model": "m", "messages": HELLO, "top_k": 2**31})
    assert caught.value.param == "top_k"


def test_an_embeddings_token_id_beyond_int32_is_a_400() -> None:
    body = parse(EmbeddingsRequest, {"model": "m", "input": [1, 2**31]})
    with pytest.raises(InvalidRequest) as caught:
        body.inputs()
    assert caught.value.param == "input[1]"


def test_tokenize_content_over_the_character_limit_is_refused() -> None:
    config = ServerConfig(max_input_chars=10)
    parse(TokenizeRequest, {"model": "m", "content": "x" * 10}, config)
    with pytest.raises(LimitExceeded) as caught:
        parse(TokenizeRequest, {"model": "m", "content": "x" * 11}, config)
    assert caught.value.limit == "max_input_chars" and caught.value.param == "content"


def test_embeddings_inputs_count_their_characters_together() -> None:
    config = ServerConfig(max_input_chars=10)
    with pytest.raises(LimitExceeded):
        parse(EmbeddingsRequest, {"model": "m", "input": ["x" * 6, "y" * 6]}, config)


async def test_a_clients_streams_beyond_its_limit_get_429_with_retry_after() -> None:
    slots = StreamSlots(limit=1)
    async with slots.hold("10.0.0.1"):
        async with slots.hold("10.0.0.2"):  # another client is not counted against the first
            pass
        with pytest.raises(TooManyStreams) as caught:
            async with slots.hold("10.0.0.1"):
                pass
    assert caught.value.status == 429 and "Retry-After" in caught.value.headers
    async with slots.hold("10.0.0.1"):  # the slot is free again once the stream ended
        assert slots.open["10.0.0.1"] == 1
    assert not slots.open


class NeverDrains:
    """A response whose writes wait forever, as they do once a client that never reads fills the socket."""

    async def write(self, data: bytes) -> None:
        await asyncio.Event().wait()


async def test_a_client_that_never_reads_ends_the_stream_and_its_generation(monkeypatch) -> None:
    app = web.Application()
    app[CONFIG] = ServerConfig(stream_write_timeout=0.1)
    request = make_mocked_request("POST", "/v1/chat/completions", app=app)
    closed = asyncio.Event()

    async def payloads() -> AsyncGenerator[dict, None]:
        try:
            while True:
                yield {"token": "x"}
        finally:
            closed.set()

    async def opened(self: EventStream) -> NeverDrains:
        return NeverDrains()

    monkeypatch.setattr(EventStream, "_open", opened)
    async with asyncio.timeout(5):
        await serve_sse(request, payloads())
    assert closed.is_set()
    request.transport.abort.assert_called_once()


def model(backend: str, **fields: object) -> ModelConfig:
    return ModelConfig(name="m", backend=backend, file="m", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "capability", "served"),
    [
        (model("llama-cpp"), capabilities.TEXT, True),
        (model("llama-cpp", embeddings=True), capabilities.TEXT, True),  # llama.cpp still samples
        (model("llama-cpp", embeddings=True), capabilities.EMBEDDINGS, True),
        (model("llama-cpp"), capabilities.EMBEDDINGS, False),
        (model("embeddings"), capabilities.EMBEDDINGS, True),
        (model("embeddings", options={"cross_encoder": True}), capabilities.EMBEDDINGS, False),
        (model("embeddings", options={"cross_encoder": True}), capabilities.RERANK, True),
        (model("embeddings"), capabilities.TEXT, False),
        (model("whisper"), capabilities.TOKENIZE, False),
        (model("diffusion"), capabilities.IMAGES, True),
        (model("tts"), capabilities.TRANSCRIBE, False),
    ],
)
def test_which_model_serves_which_endpoint(config: ModelConfig, capability, served: bool) -> None:  # type: ignore[no-untyped-def]
    assert capability.serves(config) is served


def test_the_model_kind_reads_as_users_say_it() -> None:
    assert capabilities.kind_of(model("embeddings")) == "an embeddings model"
    assert capabilities.kind_of(model("llama-cpp")) == "a chat model"


@pytest.mark.parametrize(
    ("config", "base"),
    [
        (ServerConfig(public_url="https://ai.example.com/"), "https://ai.example.com"),
        (ServerConfig(host="127.0.0.1", port=9000), "http://127.0.0.1:9000"),
        (ServerConfig(host="::1", port=9000), "http://[::1]:9000"),
        (ServerConfig(host="0.0.0.0"), ""),
    ],
)
def test_image_urls_come_from_the_config_never_the_host_header(config: ServerConfig, base: str) -> None:
    assert url_base(config) == base
