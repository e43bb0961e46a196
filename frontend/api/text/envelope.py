"""What OpenAI's chat and completions replies share around their choices: the id, object names, usage.

The renderers (openai_chat, openai_completions) differ only in these names and in the choice body.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass

from frontend.api.text.core import ChoiceEvent, Events, Usage


@dataclass(frozen=True)
class Envelope:
    id_prefix: str
    object: str  # of a whole reply
    chunk_object: str  # of each streamed chunk

    def head(self, model: str, streamed: bool) -> dict:
        return {
            "id": f"{self.id_prefix}-{secrets.token_hex(12)}",
            "object": self.chunk_object if streamed else self.object,
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
        }


def whole(envelope: Envelope, model: str, choices: list[dict], usage: Usage) -> dict:
    return {**envelope.head(model, streamed=False), "choices": choices, "usage": usage.as_dict()}


async def chunks(
    envelope: Envelope,
    model: str,
    events: Events,
    include_usage: bool,
    choice_chunks: Callable[[ChoiceEvent], list[dict]],
) -> AsyncGenerator[dict, None]:
    """One chunk per choice body that `choice_chunks` makes of an event, all under one id; then the usage.

    With `include_usage`, OpenAI sends `"usage": null` on every chunk and the totals on a last chunk
    with no choices.
    """
    head = envelope.head(model, streamed=True)
    usage_field = {"usage": None} if include_usage else {}
    async with aclosing(events):
        async for event in events:
            if isinstance(event, Usage):
                if include_usage:
                    yield {**head, "choices": [], "usage": event.as_dict()}
                continue
            for choice in choice_chunks(event):
                yield {**head, "choices": [choice], **usage_field}
