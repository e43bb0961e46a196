"""The one generation core: a text generation as a stream of API-neutral events.

Every wire format (OpenAI chat and completions, JSON or SSE; later Responses, Anthropic Messages, Ollama
NDJSON) renders these events and nothing else. What must be done once lives here: running n choices,
accounting tokens, and stopping the worker's calls when the consumer stops. Errors are not events: an
APIError (WorkerFailed, InvalidRequest...) is raised from the stream, and the HTTP layer renders it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Protocol

from frontend.workers.messages import Delta, Generation, TokenLogprob


class Generator(Protocol):
    """What the core needs of a worker (frontend.workers.worker.Worker; a fake in unit tests)."""

    def generate(self, generation: Generation) -> AsyncGenerator[Delta, None]: ...


@dataclass(frozen=True)
class TextDelta:
    choice: int
    text: str
    logprobs: tuple[TokenLogprob, ...] | None  # None: not requested


@dataclass(frozen=True)
class ToolCallStart:
    choice: int
    call: int  # the call's position within its choice
    id: str
    name: str


@dataclass(frozen=True)
class ToolCallArguments:
    choice: int
    call: int
    arguments: str  # a piece of the JSON text


@dataclass(frozen=True)
class Finish:
    choice: int
    reason: str  # "stop", "length", "tool_calls"


@dataclass(frozen=True)
class Usage:
    """The whole request's tokens: sent once, after every choice finished."""

    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


ChoiceEvent = TextDelta | ToolCallStart | ToolCallArguments | Finish
Event = ChoiceEvent | Usage
Events = AsyncGenerator[Event, None]


async def generate(worker: Generator, generations: list[Generation], n: int) -> Events:
    """The events of every choice, then the usage.

    Choices run prompt-major (prompt i, sample j has index i*n + j); all samples of a prompt read the same
    prompt, so its tokens are counted once, on its first sample.
    """
    wants_logprobs = generations[0].logprobs != 0
    prompt_tokens = completion_tokens = 0
    async with aclosing(run_choices(worker, generations)) as deltas:
        async for index, delta in deltas:
            if delta.text or (wants_logprobs and delta.logprobs):
                yield TextDelta(index, delta.text, tuple(delta.logprobs) if wants_logprobs else None)
            if delta.finish_reason:
                completion_tokens += delta.completion_tokens
                if index % n == 0:
                    prompt_tokens += delta.prompt_tokens
                yield Finish(index, delta.finish_reason)
    yield Usage(prompt_tokens, completion_tokens)


async def run_choices(
    worker: Generator, generations: list[Generation]
) -> AsyncGenerator[tuple[int, Delta], None]:
    """Deltas of every choice as they come, tagged with the choice's index; closing it cancels them all."""
    if len(generations) == 1:
        async with aclosing(worker.generate(generations[0])) as deltas:
            async for delta in deltas:
                yield 0, delta
        return
    queue: asyncio.Queue[tuple[int, Delta | BaseException | None]] = asyncio.Queue()

    async def drain(index: int, generation: Generation) -> None:
        try:
            async with aclosing(worker.generate(generation)) as deltas:
                async for delta in deltas:
                    await queue.put((index, delta))
            await queue.put((index, None))
        except BaseException as error:
            await queue.put((index, error))

    tasks = [asyncio.create_task(drain(i, g)) for i, g in enumerate(generations)]
    try:
        remaining = len(tasks)
        while remaining:
            index, item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class Choice:
    """One choice, whole: what a non-streamed reply is rendered from."""

    index: int
    text: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None  # None: not requested
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass(frozen=True)
class Reply:
    choices: list[Choice]
    usage: Usage


async def collect(events: Events, logprobs: bool) -> Reply:
    """Gather a stream into whole choices, for a reply sent at once."""
    choices: dict[int, Choice] = {}
    usage = Usage(0, 0)
    async with aclosing(events):
        async for event in events:
            if isinstance(event, Usage):
                usage = event
                continue
            choice = choices.get(event.choice)
            if choice is None:
                choice = choices[event.choice] = Choice(event.choice, logprobs=[] if logprobs else None)
            add(choice, event)
    return Reply([choices[i] for i in sorted(choices)], usage)


def add(choice: Choice, event: ChoiceEvent) -> None:
    match event:
        case TextDelta(text=text, logprobs=entries):
            choice.text.append(text)
            if choice.logprobs is not None and entries:
                choice.logprobs.extend(entries)
        case ToolCallStart(id=call_id, name=name):
            choice.tool_calls.append(ToolCall(call_id, name, ""))
        case ToolCallArguments(call=call, arguments=arguments):
            old = choice.tool_calls[call]
            choice.tool_calls[call] = ToolCall(old.id, old.name, old.arguments + arguments)
        case Finish(reason=reason):
            choice.finish_reason = reason
