"""POST /v1/chat/completions."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from frontend.backend_client import Message
from frontend.errors import InvalidRequest
from frontend.parsing import parse_body
from frontend.state import MANAGER
from frontend.textgen import MAX_TOKENS_LIMIT, Choice, Shape, TextRequest, first, respond

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

    def limit(self) -> int | None:
        return first(self.max_completion_tokens, self.max_tokens)

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
        "logprobs": None,
        "finish_reason": choice.finish_reason,
    }


def chat_chunk_choice(index: int, text: str, finish_reason: str | None) -> dict:
    delta = {"content": text} if text else {}
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


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
        generations = [body.generation(worker.config, conversation, i) for i in range(body.n)]
        return await respond(request, worker, body, generations, CHAT)
