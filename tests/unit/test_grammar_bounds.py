"""Grammars and schemas that would crash a worker (llama.cpp parses nesting recursively) are refused at the
edge, with the field named; ordinary ones pass untouched."""

from __future__ import annotations

import pytest

from frontend.api.parsing import parse
from frontend.api.text.chat import ChatCompletionRequest
from frontend.api.text.structured import MAX_GRAMMAR_DEPTH, nesting_depth
from frontend.errors import InvalidRequest

USER = [{"role": "user", "content": "hi"}]


def request(**fields: object) -> ChatCompletionRequest:
    return parse(ChatCompletionRequest, {"model": "m", "messages": USER, **fields})


@pytest.mark.parametrize(
    ("grammar", "depth"),
    [
        ('root ::= "a"', 0),
        ('root ::= ("a" | ("b" "c"))*', 2),
        ('root ::= "((((" [()] # ((((\nx ::= ("y")', 1),
        ('root ::= "\\"(" ("z")', 1),
    ],
)
def test_nesting_depth_skips_literals_classes_and_comments(grammar: str, depth: int) -> None:
    assert nesting_depth(grammar) == depth


def test_a_deeply_nested_grammar_is_refused() -> None:
    grammar = "root ::= " + "(" * 20000 + '"a"' + ")" * 20000
    with pytest.raises(InvalidRequest) as refused:
        request(grammar=grammar)
    assert refused.value.param == "grammar"
    assert refused.value.code == "grammar_too_large"


def test_nesting_up_to_the_ceiling_is_accepted() -> None:
    depth = MAX_GRAMMAR_DEPTH
    assert request(grammar="root ::= " + "(" * depth + '"a"' + ")" * depth)._grammar


@pytest.mark.parametrize("keyword", ["maxLength", "minLength", "maxItems", "minItems"])
def test_a_huge_length_or_item_bound_in_a_schema_is_refused(keyword: str) -> None:
    kind = "string" if "Length" in keyword else "array"
    schema = {"type": kind, keyword: 1_000_000}
    with pytest.raises(InvalidRequest) as refused:
        request(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert refused.value.param == "response_format.json_schema.schema"
    assert keyword in refused.value.message


def test_an_ordinary_schema_bound_is_accepted() -> None:
    schema = {"type": "string", "maxLength": 200}
    assert request(response_format={"type": "json_schema", "json_schema": {"schema": schema}})._grammar


def test_a_grammar_over_the_size_limit_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="longer than"):
        request(grammar='root ::= "' + "a" * 300_000 + '"')
