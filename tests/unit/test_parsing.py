"""frontend/api/parsing.py: request bodies become typed objects, and a bad field names its `param`."""

from __future__ import annotations

import pytest

from frontend.api.parsing import param_path, parse
from frontend.api.text.chat import ChatCompletionRequest
from frontend.api.text.completions import CompletionRequest
from frontend.errors import InvalidRequest

USER = [{"role": "user", "content": "hi"}]


def chat(**fields: object) -> dict:
    return {"model": "tiny", "messages": USER, **fields}


def rejected_param(body: dict, model: type = ChatCompletionRequest) -> str | None:
    with pytest.raises(InvalidRequest) as caught:
        parse(model, body)
    assert caught.value.status == 400
    return caught.value.param


@pytest.mark.parametrize(
    ("loc", "param"),
    [
        (("messages",), "messages"),
        (("messages", 0, "role"), "messages[0].role"),
        (("messages", 2, "content", 1, "text"), "messages[2].content[1].text"),
        (("stop", "list[str]", 3), "stop[3]"),
        (("messages", 0, "content", "str"), "messages[0].content"),
        (("messages", 1, "function-after[content_or_tool_calls(), ChatMessage]"), "messages[1]"),
    ],
)
def test_param_path_names_nested_fields_the_openai_way(loc: tuple, param: str) -> None:
    assert param_path(loc) == param


def test_valid_chat_request_parses() -> None:
    request = parse(ChatCompletionRequest, chat())
    assert request.model == "tiny"
    assert request.messages[0].content == "hi"


def test_missing_messages_are_rejected_with_param_messages() -> None:
    assert rejected_param({"model": "tiny"}) == "messages"


def test_empty_messages_are_rejected_with_param_messages() -> None:
    assert rejected_param(chat(messages=[])) == "messages"


def test_unknown_role_is_rejected_with_its_path() -> None:
    assert rejected_param(chat(messages=[{"role": "robot", "content": "x"}])) == "messages[0].role"


def test_missing_model_is_rejected_with_param_model() -> None:
    assert rejected_param({"messages": USER}) == "model"


def test_negative_max_tokens_is_rejected() -> None:
    assert rejected_param(chat(max_tokens=-1)) == "max_tokens"


def test_zero_choices_is_rejected() -> None:
    assert rejected_param(chat(n=0)) == "n"


def test_word_for_temperature_is_rejected() -> None:
    assert rejected_param(chat(temperature="hot")) == "temperature"


def test_number_in_a_string_for_temperature_is_rejected() -> None:
    assert rejected_param(chat(temperature="0.5")) == "temperature"


def test_boolean_for_an_integer_field_is_rejected() -> None:
    assert rejected_param(chat(n=True)) == "n"


def test_integer_temperature_is_accepted() -> None:
    assert parse(ChatCompletionRequest, chat(temperature=1)).temperature == 1.0


def test_stop_as_a_string_is_accepted() -> None:
    assert parse(ChatCompletionRequest, chat(stop="END")).stop_sequences() == ("END",)


def test_stop_as_a_list_is_accepted() -> None:
    assert parse(ChatCompletionRequest, chat(stop=["A", "B"])).stop_sequences() == ("A", "B")


def test_unknown_fields_are_ignored() -> None:
    assert parse(ChatCompletionRequest, chat(store=True, metadata={"a": "b"})).model == "tiny"


def test_error_message_names_the_param() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(ChatCompletionRequest, chat(max_tokens=0))
    assert "'max_tokens'" in caught.value.message
    assert caught.value.code == "invalid_value"


def test_null_content_is_rejected_for_a_user_message() -> None:
    assert rejected_param(chat(messages=[{"role": "user", "content": None}])) == "messages[0]"


def test_null_content_is_accepted_for_an_assistant_tool_call() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    messages = [*USER, {"role": "assistant", "content": None, "tool_calls": calls}]
    assert parse(ChatCompletionRequest, chat(messages=messages)).messages[1].tool_calls == calls


def test_completion_prompt_must_be_text() -> None:
    assert rejected_param({"model": "tiny", "prompt": 5}, CompletionRequest) == "prompt"
