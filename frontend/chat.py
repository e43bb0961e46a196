"""POST /v1/chat/completions."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from frontend.backend_client import Message, TokenLogprob
from frontend.errors import InvalidRequest
from frontend.parsing import parse_body
from frontend.state import CONFIG, MANAGER
from frontend.textgen import MAX_TOKENS_LIMIT, Choice, Shape, TextRequest, first, respond
from frontend.tools import Tool, ToolChoice, ToolPlan, plan, respond_with_tools

routes = web.RouteTableDef()


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def content_or_tool_calls(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(
                "content is required (it may be null only for an assistant message with tool_calls)"
            )
        return self


class ChatCompletionRequest(TextRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    # One call per reply satisfies both values; accepted so that clients that send it are served.
    parallel_tool_calls: bool = True
    _tool_plan: ToolPlan | None = PrivateAttr(None)

    @model_validator(mode="after")
    def build_tool_plan(self) -> ChatCompletionRequest:
        self._tool_plan = plan(self.tools, self.tool_choice)
        if self._tool_plan and self._tool_plan.grammar:
            if self._grammar:
                raise InvalidRequest(
                    "a forced tool call cannot be combined with `response_format` or `grammar`",
                    param="tool_choice",
                )
            self._grammar = self._tool_plan.grammar
        return self

    @model_validator(mode="after")
    def top_logprobs_needs_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise InvalidRequest("top_logprobs needs logprobs set to true", param="top_logprobs")
        return self

    def limit(self) -> int | None:
        return first(self.max_completion_tokens, self.max_tokens)

    def logprob_count(self) -> int:
        if not self.logprobs:
            return 0
        return self.top_logprobs or -1

    def conversation(self) -> list[Message]:
        return [to_message(i, m) for i, m in enumerate(self.messages)]


def to_message(index: int, message: ChatMessage) -> Message:
    return Message(
        # Templates know "system"; OpenAI's newer "developer" role means the same to a local model.
        role="system" if message.role == "developer" else message.role,
        content=message_text(index, message.content),
        name=message.name,
        tool_calls=message.tool_calls,
        tool_call_id=message.tool_call_id,
    )


def message_text(index: int, content: str | list[ContentPart] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part_index, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise InvalidRequest(
                f"content parts of type {part.type!r} are not supported by text models; send text parts",
                param=f"messages[{index}].content[{part_index}]",
            )
        texts.append(part.text)
    return "\n".join(texts)


def chat_choice(choice: Choice) -> dict:
    return {
        "index": choice.index,
        "message": {"role": "assistant", "content": "".join(choice.text), "refusal": None},
        "logprobs": chat_logprobs(choice.logprobs),
        "finish_reason": choice.finish_reason,
    }


def chat_chunk_choice(
    index: int, text: str, finish_reason: str | None, logprobs: list[TokenLogprob] | None
) -> dict:
    delta = {"content": text} if text else {}
    return {
        "index": index,
        "delta": delta,
        "logprobs": chat_logprobs(logprobs),
        "finish_reason": finish_reason,
    }


def chat_logprobs(entries: list[TokenLogprob] | None) -> dict | None:
    if entries is None:
        return None
    return {
        "content": [{**logprob_entry(e), "top_logprobs": [logprob_entry(t) for t in e.top]} for e in entries],
        "refusal": None,
    }


def logprob_entry(entry: TokenLogprob) -> dict:
    return {"token": entry.token, "logprob": entry.logprob, "bytes": list(entry.bytes)}


CHAT = Shape(
    id_prefix="chatcmpl",
    object="chat.completion",
    chunk_object="chat.completion.chunk",
    opening=lambda index: {
        "index": index,
        "delta": {"role": "assistant", "content": ""},
        "logprobs": None,
        "finish_reason": None,
    },
    chunk_choice=chat_chunk_choice,
    final=chat_choice,
)


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await parse_body(request, ChatCompletionRequest)
    conversation = body.conversation()
    async with request.app[MANAGER].use(body.model) as worker:
        tools = body._tool_plan
        interval = request.app[CONFIG].stream_interval_ms
        generations = [
            body.generation(worker.config, conversation, i, interval, tools=tools.tools if tools else None)
            for i in range(body.n)
        ]
        if tools is not None:
            return await respond_with_tools(request, worker, body, generations, tools.names)
        return await respond(request, worker, body, generations, CHAT)
