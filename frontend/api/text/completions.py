"""POST /v1/completions (the legacy text completion API): the request body, and the handler."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, model_validator

from frontend.api.capabilities import TEXT, require
from frontend.api.limits import stream_slot
from frontend.api.parsing import parse_body
from frontend.api.sse import serve_sse
from frontend.api.text.core import collect, generate
from frontend.api.text.openai_completions import completion_json, completion_sse
from frontend.api.text.request import TextRequest
from frontend.errors import InvalidRequest
from frontend.state import CONFIG, MANAGER
from frontend.workers.messages import Generation
from onebox_common.model_config import ModelConfig

routes = web.RouteTableDef()


class CompletionRequest(TextRequest):
    prompt: str | list[str] = Field(...)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)

    @model_validator(mode="after")
    def no_echo_and_some_prompt(self) -> CompletionRequest:
        if self.echo:
            # refused rather than ignored: a client asking for the prompt back would get a different shape
            raise InvalidRequest(
                "echo is not supported; the completion text never includes the prompt", param="echo"
            )
        if not self.prompt and isinstance(self.prompt, list):
            raise InvalidRequest("prompt must not be an empty list", param="prompt")
        return self

    def logprob_count(self) -> int:
        if self.logprobs is None:
            return 0
        return self.logprobs or -1

    def choice_count(self) -> int:
        return len(self.prompts()) * self.n

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt

    def generations(self, config: ModelConfig, stream_interval_ms: int) -> list[Generation]:
        """Prompt-major: prompt i, sample j is choice i*n + j."""
        return [
            self.generation(config, prompt, j, stream_interval_ms)
            for prompt in self.prompts()
            for j in range(self.n)
        ]


@routes.post("/v1/completions")
async def completions(request: web.Request) -> web.StreamResponse:
    body = await parse_body(request, CompletionRequest)
    require(request, body.model, TEXT)
    async with stream_slot(request, body.stream), request.app[MANAGER].use(body.model) as worker:
        generations = body.generations(worker.config, request.app[CONFIG].stream_interval_ms)
        events = generate(worker, generations, body.n)
        if body.stream:
            return await serve_sse(request, completion_sse(body.model, events, body.include_usage()))
        reply = await collect(events, body.logprob_count() != 0)
        return web.json_response(completion_json(body.model, reply))
