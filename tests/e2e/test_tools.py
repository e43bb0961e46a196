"""Function calling through the openai client: forced calls are grammar-constrained to declared functions."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.e2e.conftest import CHAT_MODEL

pytestmark = pytest.mark.e2e

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 30}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 30}},
    "required": ["city"],
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                      "parameters": WEATHER_PARAMS}},
    {"type": "function", "function": {"name": "get_time", "description": "Current time in a city",
                                      "parameters": TIME_PARAMS}},
]  # fmt: skip
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def assert_consistent(choice) -> None:  # type: ignore[no-untyped-def]
    """Auto mode: the model may call or answer, but the finish reason must say which it did."""
    if choice.message.tool_calls:
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
    else:
        assert choice.finish_reason in {"stop", "length"}
        assert choice.message.content is not None


def test_required_tool_call_names_a_declared_function_with_valid_arguments(client) -> None:
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=120
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.id and call.type == "function"
    assert call.function.name in {"get_weather", "get_time"}
    arguments = json.loads(call.function.arguments)
    schema = WEATHER_PARAMS if call.function.name == "get_weather" else TIME_PARAMS
    jsonschema.validate(arguments, schema)


def test_named_tool_call_streams_as_tool_call_deltas(client) -> None:
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL, messages=ASK, tools=TOOLS, temperature=0, max_tokens=120, stream=True,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    )  # fmt: skip
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas)
    jsonschema.validate(json.loads(arguments), WEATHER_PARAMS)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_stream_helper_assembles_the_tool_call(client) -> None:
    with client.chat.completions.stream(
        model=CHAT_MODEL, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=120
    ) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    assert any(e.type == "tool_calls.function.arguments.done" for e in events)
    assert final.choices[0].finish_reason == "tool_calls"
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name in {"get_weather", "get_time"}
    assert isinstance(json.loads(call.function.arguments), dict)


def test_auto_may_answer_in_text(client) -> None:
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hello."}], tools=TOOLS, max_tokens=20
    )
    choice = reply.choices[0]
    assert_consistent(choice)
    assert choice.message.content or choice.message.tool_calls


def test_conversation_with_tool_results_renders(client) -> None:
    messages = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]  # fmt: skip
    reply = client.chat.completions.create(model=CHAT_MODEL, messages=messages, tools=TOOLS, max_tokens=20)
    assert_consistent(reply.choices[0])


def test_named_tool_that_is_not_declared_is_400(client) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=CHAT_MODEL, messages=ASK, tools=TOOLS, max_tokens=10,
            tool_choice={"type": "function", "function": {"name": "launch_rockets"}},
        )  # fmt: skip
    assert raised.value.body["param"] == "tool_choice"
