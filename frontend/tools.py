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
import time
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from frontend.backend_client import Generation
from frontend.errors import APIError, InvalidRequest
from frontend.manager import Worker
from frontend.sse import EventStream
from frontend.structured import check_schema, schema_grammar
from frontend.textgen import TextRequest, Usage, new_id, run_choices

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


def parse_calls(text: str, names: frozenset[str]) -> list[dict]:
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
        calls.append({"id": f"call_{secrets.token_hex(12)}", "type": "function",
                      "function": {"name": call["name"], "arguments": arguments}})  # fmt: skip
    return calls


@dataclass
class Reply:
    index: int
    text: str = ""
    finish_reason: str | None = None
    tool_calls: list[dict] | None = None

    def settle(self, names: frozenset[str]) -> None:
        calls = parse_calls(self.text, names)
        if calls:
            self.tool_calls, self.text, self.finish_reason = calls, "", "tool_calls"


async def respond_with_tools(
    request: web.Request,
    worker: Worker,
    body: TextRequest,
    generations: list[Generation],
    names: frozenset[str],
) -> web.StreamResponse:
    stream = EventStream(request) if body.stream else None
    replies = [Reply(i) for i in range(len(generations))]
    usage = Usage()
    try:
        async for index, delta in run_choices(worker, generations):
            replies[index].text += delta.text
            if delta.finish_reason:
                replies[index].finish_reason = delta.finish_reason
                usage.add(delta, index == 0)
        for reply in replies:
            reply.settle(names)
        if stream is None:
            return web.json_response(completion(body, replies, usage))
        return await send_stream(stream, body, replies, usage)
    except APIError as error:
        if stream is None or not stream.started:
            raise
        return await stream.fail(error)


def completion(body: TextRequest, replies: list[Reply], usage: Usage) -> dict:
    choices = []
    for r in replies:
        message = {"role": "assistant", "content": None if r.tool_calls else r.text, "refusal": None}
        if r.tool_calls:
            message["tool_calls"] = r.tool_calls
        choices.append(
            {"index": r.index, "message": message, "logprobs": None, "finish_reason": r.finish_reason}
        )
    return {"id": new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
            "model": body.model, "system_fingerprint": None, "choices": choices,
            "usage": usage.as_dict()}  # fmt: skip


async def send_stream(
    stream: EventStream, body: TextRequest, replies: list[Reply], usage: Usage
) -> web.StreamResponse:
    """OpenAI's chunks: the role, then per call its id and name, then its arguments, then the finish."""
    head = {"id": new_id("chatcmpl"), "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body.model, "system_fingerprint": None}  # fmt: skip
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def send(index: int, delta: dict, finish_reason: str | None = None) -> None:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        await stream.send({**head, "choices": [choice], **({"usage": None} if include_usage else {})})

    for r in replies:
        await send(r.index, {"role": "assistant", "content": None if r.tool_calls else ""})
        for i, call in enumerate(r.tool_calls or []):
            fn = call["function"]
            opening = {"index": i, "id": call["id"], "type": "function",
                       "function": {"name": fn["name"], "arguments": ""}}  # fmt: skip
            await send(r.index, {"tool_calls": [opening]})
            await send(r.index, {"tool_calls": [{"index": i, "function": {"arguments": fn["arguments"]}}]})
        if r.text:
            await send(r.index, {"content": r.text})
        await send(r.index, {}, r.finish_reason)
    if include_usage:
        await stream.send({**head, "choices": [], "usage": usage.as_dict()})
    return await stream.finish()
