"""POST /v1/completions (the legacy text completion API)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from frontend.backend_client import TokenLogprob
from frontend.errors import InvalidRequest
from frontend.parsing import parse_body
from frontend.state import CONFIG, MANAGER
from frontend.textgen import Choice, Shape, TextRequest, respond

routes = web.RouteTableDef()


class CompletionRequest(TextRequest):
    prompt: str | list[str] = Field(...)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)

    def logprob_count(self) -> int:
        if self.logprobs is None:
            return 0
        return self.logprobs or -1

    def prompts(self) -> list[str]:
        if self.echo:
            # refused rather than ignored: a client asking for the prompt back would get a different shape
            raise InvalidRequest(
                "echo is not supported; the completion text never includes the prompt", param="echo"
            )
        prompts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        if not prompts:
            raise InvalidRequest("prompt must not be an empty list", param="prompt")
        return prompts


def completion_choice(choice: Choice) -> dict:
    return {
        "index": choice.index,
        "text": "".join(choice.text),
        "logprobs": completion_logprobs(choice.logprobs),
        "finish_reason": choice.finish_reason,
    }


def completion_chunk_choice(
    index: int, text: str, finish_reason: str | None, logprobs: list[TokenLogprob] | None
) -> dict:
    return {
        "index": index,
        "text": text,
        "logprobs": completion_logprobs(logprobs),
        "finish_reason": finish_reason,
    }


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


def completion_shape(n: int) -> Shape:
    # Choices run prompt-major (prompt i, sample j has index i*n + j): count each prompt's tokens once.
    return Shape(
        id_prefix="cmpl",
        object="text_completion",
        chunk_object="text_completion",
        opening=lambda index: None,
        chunk_choice=completion_chunk_choice,
        final=completion_choice,
        prompt_owner=lambda index: index % n == 0,
    )


@routes.post("/v1/completions")
async def completions(request: web.Request) -> web.StreamResponse:
    body = await parse_body(request, CompletionRequest)
    prompts = body.prompts()
    async with request.app[MANAGER].use(body.model) as worker:
        interval = request.app[CONFIG].stream_interval_ms
        generations = [
            body.generation(worker.config, prompt, j, interval) for prompt in prompts for j in range(body.n)
        ]
        response = await respond(request, worker, body, generations, completion_shape(body.n))
    return response
