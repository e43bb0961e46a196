"""POST /v1/completions (the legacy text completion API)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from frontend.errors import InvalidRequest
from frontend.parsing import parse_body
from frontend.state import MANAGER
from frontend.textgen import Choice, Shape, TextRequest, respond

routes = web.RouteTableDef()


class CompletionRequest(TextRequest):
    prompt: str | list[str] = Field(...)
    echo: bool = False

    def prompts(self) -> list[str]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        if not prompts:
            raise InvalidRequest("prompt must not be an empty list", param="prompt")
        return prompts


def completion_choice(choice: Choice) -> dict:
    return {
        "index": choice.index,
        "text": "".join(choice.text),
        "logprobs": None,
        "finish_reason": choice.finish_reason,
    }


def completion_chunk_choice(index: int, text: str, finish_reason: str | None) -> dict:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}


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
        generations = [body.generation(worker.config, prompt, j) for prompt in prompts for j in range(body.n)]
        response = await respond(request, worker, body, generations, completion_shape(body.n))
    return response
