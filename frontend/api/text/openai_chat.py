"""The chat completions wire format: a reply as one `chat.completion` object, or as SSE chunks."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from frontend.api.text.core import (
    Choice,
    ChoiceEvent,
    Events,
    Finish,
    Reply,
    TextDelta,
    ToolCallArguments,
    ToolCallStart,
)
from frontend.api.text.envelope import Envelope, chunks, whole
from frontend.workers.messages import TokenLogprob

CHAT = Envelope("chatcmpl", "chat.completion", "chat.completion.chunk")


def chat_json(model: str, reply: Reply) -> dict:
    return whole(CHAT, model, [chat_choice(c) for c in reply.choices], reply.usage)


def chat_choice(choice: Choice) -> dict:
    calls = choice.tool_calls
    message: dict = {"role": "assistant", "content": None if calls else "".join(choice.text), "refusal": None}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return {
        "index": choice.index,
        "message": message,
        "logprobs": None if calls else chat_logprobs(choice.logprobs),
        "finish_reason": choice.finish_reason,
    }


def chat_sse(model: str, events: Events, include_usage: bool) -> AsyncGenerator[dict, None]:
    """OpenAI's chunks: a choice opens by announcing the role, then its content or calls, then its finish."""
    opened: set[int] = set()

    def choice_chunks(event: ChoiceEvent) -> list[dict]:
        if event.choice in opened:
            return [chat_chunk_choice(event)]
        opened.add(event.choice)
        # a reply that is a call has no content, so its opening says null rather than ""
        content = None if isinstance(event, ToolCallStart) else ""
        opening = {"role": "assistant", "content": content}
        return [chunk_choice(event.choice, opening), chat_chunk_choice(event)]

    return chunks(CHAT, model, events, include_usage, choice_chunks)


def chat_chunk_choice(event: ChoiceEvent) -> dict:
    match event:
        case TextDelta(choice=index, text=text, logprobs=logprobs):
            entries = None if logprobs is None else list(logprobs)
            return chunk_choice(index, {"content": text} if text else {}, logprobs=chat_logprobs(entries))
        case ToolCallStart(choice=index, call=call, id=call_id, name=name):
            opening = {"index": call, "id": call_id, "type": "function",
                       "function": {"name": name, "arguments": ""}}  # fmt: skip
            return chunk_choice(index, {"tool_calls": [opening]})
        case ToolCallArguments(choice=index, call=call, arguments=arguments):
            return chunk_choice(
                index, {"tool_calls": [{"index": call, "function": {"arguments": arguments}}]}
            )
        case Finish(choice=index, reason=reason):
            return chunk_choice(index, {}, finish_reason=reason)
    raise TypeError(f"not a choice event: {event!r}")


def chunk_choice(
    index: int, delta: dict, logprobs: dict | None = None, finish_reason: str | None = None
) -> dict:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}


def chat_logprobs(entries: list[TokenLogprob] | None) -> dict | None:
    if entries is None:
        return None
    return {
        "content": [{**logprob_entry(e), "top_logprobs": [logprob_entry(t) for t in e.top]} for e in entries],
        "refusal": None,
    }


def logprob_entry(entry: TokenLogprob) -> dict:
    return {"token": entry.token, "logprob": entry.logprob, "bytes": list(entry.bytes)}
