"""Bad input gets an OpenAI-shaped error with the right status, and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import CHAT_MODEL, OneboxServer

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "Hi"}]


def post(server: OneboxServer, path: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", timeout=120, **kwargs)


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def test_unknown_model_returns_404_pointing_at_models_list(server: OneboxServer) -> None:
    error = assert_error(
        post(server, "/v1/chat/completions", json={"model": "nope", "messages": QUESTION}), 404
    )
    assert "nope" in error["message"] and "/v1/models" in error["message"]
    assert error["code"] == "model_not_found"


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a\x00b", "models/../x", ""])
def test_model_name_that_looks_like_a_path_is_refused(server: OneboxServer, name: str) -> None:
    response = post(server, "/v1/chat/completions", json={"model": name, "messages": QUESTION})
    assert_error(response, 400, "model")


def test_malformed_json_returns_400(server: OneboxServer) -> None:
    response = post(
        server, "/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert assert_error(response, 400)["code"] == "invalid_json"


def test_a_body_not_sent_as_json_returns_415(server: OneboxServer) -> None:
    error = assert_error(post(server, "/v1/chat/completions", content=b'{"model": "x"}'), 415)
    assert error["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": None}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0]"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 5}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"stream": "yes"}, "stream"),
        ({"stop": 3}, "stop"),
    ],
)
def test_invalid_field_returns_400_naming_it(server: OneboxServer, patch: dict, param: str) -> None:
    body = {"model": CHAT_MODEL, "messages": QUESTION, **patch}
    if patch.get("messages", 1) is None:
        del body["messages"]
    assert_error(post(server, "/v1/chat/completions", json=body), 400, param)


def test_prompt_longer_than_context_returns_400(server: OneboxServer) -> None:
    long_text = "word " * 3000  # the model's YAML gives it a 2048-token context
    response = post(server, "/v1/chat/completions", json={"model": CHAT_MODEL, "messages": [
        {"role": "user", "content": long_text}]})  # fmt: skip
    error = assert_error(response, 400, "messages")
    assert "context" in error["message"]


def test_oversized_body_returns_413(server: OneboxServer) -> None:
    big = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "x" * (3 * 1024 * 1024)}]}
    assert_error(post(server, "/v1/chat/completions", json=big), 413)


def test_model_without_chat_template_refuses_chat_but_completes(server: OneboxServer) -> None:
    chat = post(server, "/v1/chat/completions", json={"model": "no-template", "messages": QUESTION})
    error = assert_error(chat, 400, "model")
    assert "chat template" in error["message"]
    reply = post(
        server, "/v1/completions", json={"model": "no-template", "prompt": "Paris is", "max_tokens": 3}
    )
    assert reply.status_code == 200


def test_weights_that_fail_to_load_return_500_with_the_cause(server: OneboxServer) -> None:
    error = assert_error(
        post(server, "/v1/chat/completions", json={"model": "broken", "messages": QUESTION}), 500
    )
    assert "loading model 'broken' failed" in error["message"]
    assert "broken/broken.gguf" in error["message"]  # the weights as the YAML names them
    # no server paths, socket names or bytes of the file: those are in the server log only
    assert str(server.models_path) not in error["message"]
    assert ".sock" not in error["message"] and "this" not in error["message"]
    assert "invalid magic characters" in server.output()
    # the next request tries again, and fails the same clear way (no cached opaque error)
    again = assert_error(
        post(server, "/v1/chat/completions", json={"model": "broken", "messages": QUESTION}), 500
    )
    assert "loading model 'broken' failed" in again["message"]


def test_unknown_route_and_wrong_method_are_openai_shaped(server: OneboxServer) -> None:
    assert_error(httpx.get(f"{server.url}/v1/nothing-here"), 404)
    assert_error(httpx.get(f"{server.url}/v1/chat/completions"), 405)


def test_server_keeps_serving_after_bad_requests(server: OneboxServer) -> None:
    post(server, "/v1/chat/completions", content=b"\xff\xfe")
    reply = post(
        server, "/v1/chat/completions", json={"model": CHAT_MODEL, "messages": QUESTION, "max_tokens": 3}
    )
    assert reply.status_code == 200
