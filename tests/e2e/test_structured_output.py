"""Structured output (JSON mode, strict JSON schema, GBNF grammar) and the openai client's stream helper."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest

from tests.e2e.conftest import CHAT_MODEL, OneboxServer

pytestmark = pytest.mark.e2e

PERSON_PROMPT = [{"role": "user", "content": "Describe a person called Ann, aged 31, as JSON."}]
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "role": {"enum": ["admin", "user"]},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}
PERSON_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
}


def test_json_mode_reply_parses(client) -> None:
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=PERSON_PROMPT, response_format={"type": "json_object"},
        temperature=0, max_tokens=200,
    )  # fmt: skip
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(json.loads(choice.message.content), dict)


def test_strict_schema_reply_validates(client) -> None:
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=PERSON_PROMPT, response_format=PERSON_FORMAT, temperature=0, max_tokens=200
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content), PERSON_SCHEMA)


def test_strict_schema_streamed_reply_validates(client) -> None:
    stream = client.chat.completions.create(
        model=CHAT_MODEL, messages=PERSON_PROMPT, response_format=PERSON_FORMAT,
        temperature=0.7, seed=3, max_tokens=200, stream=True,
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), PERSON_SCHEMA)


def test_grammar_extension_constrains_the_reply(client) -> None:
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Is the sky blue?"}], max_tokens=10,
        extra_body={"grammar": 'root ::= "yes" | "no"'},
    )  # fmt: skip
    assert reply.choices[0].message.content in {"yes", "no"}


def test_completions_accept_a_grammar(client) -> None:
    reply = client.completions.create(
        model=CHAT_MODEL, prompt="Count: one, two,", max_tokens=10, extra_body={"grammar": "root ::= [0-9]+"}
    )
    assert reply.choices[0].text.isdigit()


def test_unsupported_schema_keyword_is_400_naming_it(server: OneboxServer) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    body = {"model": CHAT_MODEL, "messages": PERSON_PROMPT, "response_format": response_format}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "minimum" in error["message"]
    assert error["param"] == "response_format.json_schema.schema.properties.n"


def test_bad_grammar_is_400(server: OneboxServer) -> None:
    body = {"model": CHAT_MODEL, "messages": PERSON_PROMPT, "grammar": "root ::= ("}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "grammar"


def test_openai_stream_helper_parses_every_event(client) -> None:
    with client.chat.completions.stream(
        model=CHAT_MODEL, messages=PERSON_PROMPT, response_format=PERSON_FORMAT, temperature=0, max_tokens=200
    ) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    assert any(e.type == "content.delta" for e in events)
    assert any(e.type == "content.done" for e in events)
    assert final.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(final.choices[0].message.content), PERSON_SCHEMA)
