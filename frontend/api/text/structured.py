"""Structured output: `response_format` and the `grammar` extension, turned into one GBNF grammar.

The worker enforces the grammar while sampling (llama.cpp's grammar sampler), so the output parses by
construction. The JSON-schema converter is llama-cpp-python's; it silently skips keywords it does not
implement, which would make a "strict" schema a lie, so every keyword is checked here first and an
unsupported one is refused with its location.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from frontend.errors import InvalidRequest

SCHEMA_PARAM = "response_format.json_schema.schema"
# Keywords the converter turns into grammar rules, and annotations that do not constrain values.
ENFORCED = frozenset(
    {"type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
     "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "pattern",
     "minLength", "maxLength", "format"}
)  # fmt: skip
ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly",
     "writeOnly", "nullable"}
)  # fmt: skip
SUPPORTED_FORMATS = frozenset({"date", "time", "date-time", "uuid"})
# llama.cpp parses a grammar recursively, one stack frame per nested group: a worker died (SIGSEGV) at
# 20,000 levels and served at 5,000 (measured here), so 1,000 leaves a margin. The JSON-schema converter
# writes a length or item bound N as N nested groups, so those bounds share the ceiling.
MAX_GRAMMAR_DEPTH = 1000
MAX_SCHEMA_REPEAT = 1000
MAX_GRAMMAR_BYTES = 256 * 1024
REPEAT_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems")


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = "response"
    description: str | None = None
    json_schema: dict = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


def grammar_for(response_format: ResponseFormat | None, grammar: str | None) -> str:
    """The GBNF grammar that constrains a reply, or "" for free text."""
    if grammar:
        if response_format is not None and response_format.type != "text":
            raise InvalidRequest("send `grammar` or a JSON `response_format`, not both", param="grammar")
        return check_grammar(grammar, "grammar")
    if response_format is None or response_format.type == "text":
        return ""
    if response_format.type == "json_object":
        return json_object_grammar()
    if response_format.json_schema is None:
        raise InvalidRequest(
            "response_format of type json_schema needs a `json_schema` object", param="response_format"
        )
    return schema_grammar(response_format.json_schema.json_schema)


def json_object_grammar() -> str:
    from llama_cpp.llama_grammar import JSON_GBNF  # imported late: loading llama.cpp costs startup time

    return JSON_GBNF


def schema_grammar(schema: dict) -> str:
    check_schema(schema, SCHEMA_PARAM)
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except (ValueError, AssertionError, KeyError, TypeError, RecursionError) as error:
        raise InvalidRequest(
            f"the JSON schema cannot be turned into a grammar: {error}",
            param=SCHEMA_PARAM,
            code="unsupported_schema",
        ) from None
    return check_grammar(grammar, SCHEMA_PARAM)


def check_grammar(grammar: str, param: str) -> str:
    """Refuse a grammar that could take the worker down for everyone it serves, before it gets there."""
    if len(grammar.encode()) > MAX_GRAMMAR_BYTES:
        limit = f"{MAX_GRAMMAR_BYTES // 1024} KB"
        raise InvalidRequest(f"the grammar is longer than {limit}", param=param, code="grammar_too_large")
    if (depth := nesting_depth(grammar)) > MAX_GRAMMAR_DEPTH:
        raise InvalidRequest(
            f"the grammar nests groups {depth} deep; at most {MAX_GRAMMAR_DEPTH} are accepted",
            param=param,
            code="grammar_too_large",
        )
    return grammar


def nesting_depth(grammar: str) -> int:
    """The deepest ( ... ) nesting of a GBNF text, not counting brackets in literals, classes or comments."""
    depth = deepest = 0
    i, closing = 0, {'"': '"', "[": "]"}
    while i < len(grammar):
        c = grammar[i]
        if c in closing:  # skip a "literal" or [class], honouring backslash escapes
            i += 1
            while i < len(grammar) and grammar[i] != closing[c]:
                i += 2 if grammar[i] == "\\" else 1
        elif c == "#":
            end = grammar.find("\n", i)
            i = len(grammar) if end < 0 else end
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth -= 1
        i += 1
    return deepest


def check_schema(schema: object, path: str) -> None:
    """Refuse, by location, any keyword the grammar would not enforce."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{path} must be a JSON schema object", param=path, code="unsupported_schema")
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        if key not in ENFORCED:
            raise InvalidRequest(
                f"the JSON schema keyword {key!r} at {path} is not supported by constrained decoding",
                param=path,
                code="unsupported_schema",
            )
        if key in REPEAT_KEYWORDS and isinstance(value, int) and value > MAX_SCHEMA_REPEAT:
            raise InvalidRequest(
                f"{key} {value} at {path} is above {MAX_SCHEMA_REPEAT}, the most constrained decoding takes",
                param=path,
                code="unsupported_schema",
            )
        if key == "format" and value not in SUPPORTED_FORMATS:
            raise InvalidRequest(
                f"the string format {value!r} at {path} is not supported by constrained decoding; "
                f"supported: {', '.join(sorted(SUPPORTED_FORMATS))}",
                param=path,
                code="unsupported_schema",
            )
        for child_path, child in subschemas(key, value, path):
            check_schema(child, child_path)


def subschemas(key: str, value: object, path: str) -> list[tuple[str, object]]:
    if key in {"properties", "$defs", "definitions"} and isinstance(value, dict):
        return [(f"{path}.{key}.{name}", child) for name, child in value.items()]
    if key in {"anyOf", "oneOf", "allOf", "prefixItems"} and isinstance(value, list):
        return [(f"{path}.{key}[{i}]", child) for i, child in enumerate(value)]
    if key in {"items", "additionalProperties"} and isinstance(value, dict):
        return [(f"{path}.{key}", value)]
    return []
