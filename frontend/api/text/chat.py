"""POST /v1/chat/completions: the request body, and the handler (parse, generate, render)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from frontend.api.capabilities import TEXT, require
from frontend.api.limits import LimitExceeded, config_of, stream_slot
from frontend.api.parsing import parse_body
from frontend.api.sse import serve_sse
from frontend.api.text.core import collect, generate
from frontend.api.text.openai_chat import chat_json, chat_sse
from frontend.api.text.request import MAX_TOKENS_LIMIT, TextRequest, first
from frontend.api.text.tools import Tool, ToolChoice, ToolPlan, plan, tool_calls
from frontend.errors import InvalidRequest
from frontend.state import CONFIG, MANAGER
from frontend.workers.messages import Generation, Message
from onebox_common.model_config import ModelConfig

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
    _conversation: list[Message] = PrivateAttr(default_factory=list)

    @field_validator("tools")
    @classmethod
    def tools_within_limit(cls, tools: list[Tool] | None, info: ValidationInfo) -> list[Tool] | None:
        # every tool's schema is checked and, for a forced call, compiled into the grammar
        limit = config_of(info).max_tools
        if tools and limit and len(tools) > limit:
            raise LimitExceeded(
                f"this request declares {len(tools)} tools; this server takes at most {limit} (--max-tools)",
                limit="max_tools",
                param="tools",
            )
        return tools

    @model_validator(mode="after")
    def build_conversation(self) -> ChatCompletionRequest:
        self._conversation = [to_message(i, m) for i, m in enumerate(self.messages)]
        return self

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

    @property
    def tool_plan(self) -> ToolPlan | None:
        """None when the reply is plain text."""
        return self._tool_plan

    def limit(self) -> int | None:
        return first(self.max_completion_tokens, self.max_tokens)

    def logprob_count(self) -> int:
        if not self.logprobs:
            return 0
        return self.top_logprobs or -1

    def generations(self, config: ModelConfig, stream_interval_ms: int) -> list[Generation]:
        tools = self._tool_plan.tools if self._tool_plan else None
        return [
            self.generation(config, self._conversation, i, stream_interval_ms, tools=tools)
            for i in range(self.n)
        ]


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


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await parse_body(request, ChatCompletionRequest)
    require(request, body.model, TEXT)
    async with stream_slot(request, body.stream), request.app[MANAGER].use(body.model) as worker:
        generations = body.generations(worker.config, request.app[CONFIG].stream_interval_ms)
        events = generate(worker, generations, body.n)
        if body.tool_plan is not None:
            events = tool_calls(events, body.tool_plan.names)
        if body.stream:
            return await serve_sse(request, chat_sse(body.model, events, body.include_usage()))
        return web.json_response(chat_json(body.model, await collect(events, body.logprob_count() != 0)))
