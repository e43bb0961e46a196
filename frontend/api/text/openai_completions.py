"""The legacy completions wire format: a reply as one `text_completion` object, or as SSE chunks."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from frontend.api.text.core import Choice, ChoiceEvent, Events, Finish, Reply, TextDelta
from frontend.api.text.envelope import Envelope, chunks, whole
from frontend.workers.messages import TokenLogprob

COMPLETION = Envelope("cmpl", "text_completion", "text_completion")


def completion_json(model: str, reply: Reply) -> dict:
    return whole(COMPLETION, model, [completion_choice(c) for c in reply.choices], reply.usage)


def completion_choice(choice: Choice) -> dict:
    return {
        "index": choice.index,
        "text": "".join(choice.text),
        "logprobs": completion_logprobs(choice.logprobs),
        "finish_reason": choice.finish_reason,
    }


def completion_sse(model: str, events: Events, include_usage: bool) -> AsyncGenerator[dict, None]:
    return chunks(COMPLETION, model, events, include_usage, completion_chunk_choices)


def completion_chunk_choices(event: ChoiceEvent) -> list[dict]:
    match event:
        case TextDelta(choice=index, text=text, logprobs=logprobs):
            entries = None if logprobs is None else list(logprobs)
            return [chunk_choice(index, text, completion_logprobs(entries))]
        case Finish(choice=index, reason=reason):
            return [chunk_choice(index, "", None, reason)]
    return []  # completions never carry tool calls


def chunk_choice(index: int, text: str, logprobs: dict | None, finish_reason: str | None = None) -> dict:
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}


def completion_logprobs(entries: list[TokenLogprob] | None) -> dict | None:
    """The legacy shape: parallel lists, alternatives as {token: logprob}; offsets count from this piece."""
    if entries is None:
        return None
    offsets, offset = [], 0
    for entry in entries:
        offsets.append(offset)
        offset += len(entry.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [{t.token: t.logprob for t in e.top} for e in entries]
        if any(e.top for e in entries)
        else None,
        "text_offset": offsets,
    }
