"""POST /v1/tokenize and /v1/detokenize (also without /v1, as llama-server names them)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from frontend.api.capabilities import TOKENIZE, require
from frontend.api.limits import check_chars, config_of
from frontend.api.parsing import ModelName, parse_body
from frontend.state import MANAGER

routes = web.RouteTableDef()

MAX_TOKEN_ID = 2**31 - 1


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    content: str
    # llama-server's flag: add the model's BOS (and other special) tokens as a prompt would start.
    add_special: bool = False

    @field_validator("content")
    @classmethod
    def content_within_limit(cls, content: str, info: ValidationInfo) -> str:
        check_chars(len(content), config_of(info).max_input_chars, "content")
        return content


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    tokens: list[Annotated[int, Field(ge=0, le=MAX_TOKEN_ID)]]


@routes.post("/v1/tokenize")
@routes.post("/tokenize")
async def tokenize(request: web.Request) -> web.Response:
    body = await parse_body(request, TokenizeRequest)
    require(request, body.model, TOKENIZE)
    async with request.app[MANAGER].use(body.model) as worker:
        tokens = await worker.tokenize(body.content, body.add_special)
    return web.json_response({"tokens": tokens})


@routes.post("/v1/detokenize")
@routes.post("/detokenize")
async def detokenize(request: web.Request) -> web.Response:
    body = await parse_body(request, DetokenizeRequest)
    require(request, body.model, TOKENIZE)
    async with request.app[MANAGER].use(body.model) as worker:
        content = await worker.detokenize(body.tokens)
    return web.json_response({"content": content})
