"""What chat and completions share: sampling fields, running n choices, and serving them (JSON or SSE)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from frontend.backend_client import Delta, Generation, Sampling, TokenLogprob
from frontend.config import ModelConfig
from frontend.errors import APIError, InvalidRequest
from frontend.manager import Worker
from frontend.sse import EventStream
from frontend.structured import ResponseFormat, grammar_for

log = logging.getLogger("onebox.textgen")

# llama.cpp's own defaults, used where neither the request nor the model's YAML says otherwise.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95
DEFAULT_TOP_K = 40
DEFAULT_MIN_P = 0.05
MAX_STOP_SEQUENCES = 16
MAX_TOKENS_LIMIT = 2**31 - 1
WHOLE_REPLY_INTERVAL_MS = 250


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class TextRequest(BaseModel):
    """The fields /v1/chat/completions and /v1/completions have in common."""

    # Unknown fields are ignored, as OpenAI-compatible servers do: clients send extras (metadata, store...).
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)
    stop: str | list[str] | None = Field(None)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # Extension (llama-server, LocalAI): generate exactly max_tokens, past end-of-text.
    ignore_eos: bool = False
    response_format: ResponseFormat | None = None
    # Extension (llama-server, LocalAI): a GBNF grammar the output must match.
    grammar: str | None = None
    _grammar: str = PrivateAttr("")

    @model_validator(mode="after")
    def build_grammar(self) -> TextRequest:
        # Raises InvalidRequest (not a ValueError) so that the 400 names the schema's own location.
        self._grammar = grammar_for(self.response_format, self.grammar)
        return self

    def limit(self) -> int | None:
        return self.max_tokens

    def logprob_count(self) -> int:
        """Alternatives per token the worker reports: -1 only the sampled token, 0 no log-probabilities."""
        return 0

    def stop_sequences(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOP_SEQUENCES:
            raise InvalidRequest(f"at most {MAX_STOP_SEQUENCES} stop sequences are accepted", param="stop")
        return tuple(s for s in stops if s)

    def sampling(self, config: ModelConfig, choice: int = 0) -> Sampling:
        """Request values, else the model's YAML defaults, else llama.cpp's."""
        d = config.parameters
        return Sampling(
            temperature=first(self.temperature, d.temperature, DEFAULT_TEMPERATURE),
            top_p=first(self.top_p, d.top_p, DEFAULT_TOP_P),
            top_k=first(self.top_k, d.top_k, DEFAULT_TOP_K),
            min_p=first(self.min_p, d.min_p, DEFAULT_MIN_P),
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            repeat_penalty=first(self.repeat_penalty, d.repeat_penalty, 1.0),
            # n choices from one seed must differ from each other, and repeat run after run.
            seed=None if self.seed is None else self.seed + choice,
        )

    def generation(
        self, config: ModelConfig, prompt: object, choice: int, stream_interval_ms: int = 0, **extra: object
    ) -> Generation:
        return Generation(
            prompt=prompt,  # type: ignore[arg-type]
            sampling=self.sampling(config, choice),
            max_tokens=first(self.limit(), config.parameters.max_tokens, None),
            stop=self.stop_sequences(),
            ignore_eos=self.ignore_eos,
            grammar=self._grammar,
            logprobs=self.logprob_count(),
            # Every message costs CPU at each hop, which the model's busy cores feel twice over; a reply
            # sent whole needs no token-by-token messages, only enough to show the watchdog progress.
            message_interval_ms=stream_interval_ms if self.stream else WHOLE_REPLY_INTERVAL_MS,
            **extra,  # type: ignore[arg-type]
        )


def first(*values):  # type: ignore[no-untyped-def]
    return next((v for v in values if v is not None), None)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


@dataclass
class Choice:
    index: int
    text: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None  # None: not requested


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def add(self, delta: Delta, count_prompt: bool) -> None:
        self.completion_tokens += delta.completion_tokens
        if count_prompt:
            self.prompt_tokens += delta.prompt_tokens


async def run_choices(worker: Worker, generations: list[Generation]) -> AsyncIterator[tuple[int, Delta]]:
    """Deltas of every choice as they come, tagged with the choice's index."""
    if len(generations) == 1:
        async for delta in worker.generate(generations[0]):
            yield 0, delta
        return
    queue: asyncio.Queue[tuple[int, Delta | BaseException | None]] = asyncio.Queue()

    async def drain(index: int, generation: Generation) -> None:
        try:
            async for delta in worker.generate(generation):
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
class Shape:
    """How one endpoint family dresses the shared stream: ids, object names and choice bodies."""

    id_prefix: str
    object: str
    chunk_object: str
    opening: Callable[[int], dict | None]  # a choice's first chunk (chat announces the role), if any
    # (index, text, finish_reason, logprobs or None when not requested) -> chunk choice
    chunk_choice: Callable[[int, str, str | None, list[TokenLogprob] | None], dict]
    final: Callable[[Choice], dict]  # a whole choice, for the non-streamed reply
    prompt_owner: Callable[[int], bool] = lambda index: index == 0


async def respond(
    request: web.Request, worker: Worker, body: TextRequest, generations: list[Generation], shape: Shape
) -> web.StreamResponse:
    if body.stream:
        return await respond_stream(request, worker, body, generations, shape)
    wants_logprobs = generations[0].logprobs != 0
    choices = [Choice(i, logprobs=[] if wants_logprobs else None) for i in range(len(generations))]
    usage = Usage()
    async for index, delta in run_choices(worker, generations):
        choices[index].text.append(delta.text)
        if wants_logprobs:
            choices[index].logprobs.extend(delta.logprobs)  # type: ignore[union-attr]
        if delta.finish_reason:
            choices[index].finish_reason = delta.finish_reason
            usage.add(delta, shape.prompt_owner(index))
    return web.json_response(
        {
            "id": new_id(shape.id_prefix),
            "object": shape.object,
            "created": int(time.time()),
            "model": body.model,
            "system_fingerprint": None,
            "choices": [shape.final(c) for c in choices],
            "usage": usage.as_dict(),
        }
    )


async def respond_stream(
    request: web.Request, worker: Worker, body: TextRequest, generations: list[Generation], shape: Shape
) -> web.StreamResponse:
    stream = EventStream(request)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    head = {"id": new_id(shape.id_prefix), "object": shape.chunk_object, "created": int(time.time()),
            "model": body.model, "system_fingerprint": None}  # fmt: skip

    def chunk(choices: list[dict], usage: dict | None = None) -> dict:
        payload = {**head, "choices": choices}
        if include_usage:
            payload["usage"] = usage
        return payload

    usage = Usage()
    opened: set[int] = set()
    wants_logprobs = generations[0].logprobs != 0
    try:
        async for index, delta in run_choices(worker, generations):
            if index not in opened:
                opened.add(index)
                if (opening := shape.opening(index)) is not None:
                    await stream.send(chunk([opening]))
            if delta.text or (wants_logprobs and delta.logprobs):
                logprobs = delta.logprobs if wants_logprobs else None
                await stream.send(chunk([shape.chunk_choice(index, delta.text, None, logprobs)]))
            if delta.finish_reason:
                usage.add(delta, shape.prompt_owner(index))
                await stream.send(chunk([shape.chunk_choice(index, "", delta.finish_reason, None)]))
        if include_usage:
            await stream.send({**head, "choices": [], "usage": usage.as_dict()})
        return await stream.finish()
    except APIError as error:
        if not stream.started:
            raise
        log.warning("stream for %s failed after it started: %s", body.model, error.message)
        return await stream.fail(error)
    except ConnectionResetError:
        log.info("client went away mid-stream; generation for %s cancelled", body.model)
        return web.Response(status=499)
