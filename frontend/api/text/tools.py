"""Function calling: `tools` and `tool_choice` on chat completions.

With `required` or a named function the reply is grammar-constrained to one JSON call
`{"name": ..., "arguments": {...}}` of a declared function whose arguments match its parameters schema.
With `auto` the model writes freely, and a reply that is a call (a bare JSON call, or Hermes-style
`<tool_call>` blocks, which most chat templates teach) becomes `tool_calls`. A reply that may hold calls is
collected whole before it is sent: a call is only known to be one once it has ended.
"""

from __future__ import annotations

import json
import re
import secrets
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from frontend.api.text.core import (
    ChoiceEvent,
    Events,
    Finish,
    TextDelta,
    ToolCall,
    ToolCallArguments,
    ToolCallStart,
)
from frontend.api.text.structured import check_schema, schema_grammar
from frontend.errors import InvalidRequest

TOOL_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict | None = None
    strict: bool | None = None


class Tool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


@dataclass(frozen=True)
class ToolPlan:
    """What a request's tools mean for generation: the grammar (constrained) or none (auto)."""

    tools: list[dict]
    names: frozenset[str]
    grammar: str  # "" in auto mode


def plan(tools: list[Tool] | None, choice: ToolChoice | None) -> ToolPlan | None:
    """None when the reply is plain text: no tools, or tool_choice "none"."""
    if not tools:
        if isinstance(choice, NamedToolChoice) or choice == "required":
            raise InvalidRequest("tool_choice needs a non-empty `tools` list", param="tool_choice")
        return None
    if choice == "none":
        return None
    for i, tool in enumerate(tools):
        if tool.function.parameters is not None:
            check_schema(tool.function.parameters, f"tools[{i}].function.parameters")
    names = frozenset(t.function.name for t in tools)
    declared = [t.model_dump(exclude_none=True) for t in tools]
    if choice is None or choice == "auto":
        return ToolPlan(declared, names, "")
    chosen = tools
    if isinstance(choice, NamedToolChoice):
        chosen = [t for t in tools if t.function.name == choice.function.name]
        if not chosen:
            raise InvalidRequest(
                f"tool_choice names {choice.function.name!r}, which is not in `tools`", param="tool_choice"
            )
    return ToolPlan(declared, names, schema_grammar({"anyOf": [call_schema(t) for t in chosen]}))


def call_schema(tool: Tool) -> dict:
    return {
        "type": "object",
        "properties": {
            "name": {"const": tool.function.name},
            "arguments": tool.function.parameters or {"type": "object"},
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def parse_calls(text: str, names: frozenset[str]) -> list[ToolCall]:
    """The calls a reply makes, or [] when it is an ordinary answer."""
    blocks = TOOL_CALL_BLOCK.findall(text) or [text.strip()]
    calls = []
    for block in blocks:
        try:
            call = json.loads(block, strict=False)  # the grammar lets strings hold raw newlines
        except json.JSONDecodeError:
            return []
        if not isinstance(call, dict) or call.get("name") not in names:
            return []
        arguments = call.get("arguments", call.get("parameters", {}))
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(ToolCall(f"call_{secrets.token_hex(12)}", call["name"], arguments))
    return calls


async def tool_calls(events: Events, names: frozenset[str]) -> Events:
    """The same events, each choice held whole until it finishes and, when its text is a call, sent as one.

    A call is only known to be one once it has ended, so nothing of a choice passes before its finish.
    """
    held: dict[int, list[TextDelta]] = {}
    async with aclosing(events):
        async for event in events:
            if isinstance(event, TextDelta):
                held.setdefault(event.choice, []).append(event)
            elif isinstance(event, Finish):
                for settled in settle(event, held.pop(event.choice, []), names):
                    yield settled
            else:
                yield event


def settle(finish: Finish, deltas: list[TextDelta], names: frozenset[str]) -> list[ChoiceEvent]:
    """A finished choice's events: its calls and the `tool_calls` finish, or its text as one delta."""
    text = "".join(d.text for d in deltas)
    calls = parse_calls(text, names)
    if calls:
        pieces: list[ChoiceEvent] = []
        for i, call in enumerate(calls):
            pieces += [
                ToolCallStart(finish.choice, i, call.id, call.name),
                ToolCallArguments(finish.choice, i, call.arguments),
            ]
        return [*pieces, Finish(finish.choice, "tool_calls")]
    logprobs = None
    if deltas and deltas[0].logprobs is not None:
        logprobs = tuple(entry for d in deltas for entry in d.logprobs or ())
    whole = [TextDelta(finish.choice, text, logprobs)] if text or logprobs else []
    return [*whole, finish]
