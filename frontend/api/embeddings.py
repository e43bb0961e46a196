"""POST /v1/embeddings.

`input` is a string, a list of strings, a list of token ids or a list of token-id lists (token ids are the
model's own, passed to it as they are). Two `options:` of the model's YAML are read here: `truncate` (embed
the start of an input longer than the model's window instead of refusing it) and `truncate_dimensions`
(the model is a Matryoshka model: a shorter `dimensions` keeps the first components, renormalised).
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from frontend.api.capabilities import EMBEDDINGS, require
from frontend.api.limits import check_chars, config_of
from frontend.api.parsing import ModelName, parse_body
from frontend.errors import InvalidRequest
from frontend.state import MANAGER
from onebox_common.model_config import ModelConfig
from onebox_common.options import EmbeddingOutput

routes = web.RouteTableDef()

MAX_INPUTS = 2048  # OpenAI's limit on the items of one request
MAX_TOKEN_ID = 2**31 - 1  # the wire type is int32; the worker checks the model's own vocabulary
INPUT_KINDS = "a string, a list of strings, a list of token ids or a list of token-id lists"


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @model_validator(mode="after")
    def input_within_limit(self, info: ValidationInfo) -> EmbeddingsRequest:
        texts = [self.input] if isinstance(self.input, str) else self.input
        total = sum(len(text) for text in texts if isinstance(text, str))
        check_chars(total, config_of(info).max_input_chars, "input")
        return self

    def inputs(self) -> list[str] | list[list[int]]:
        return to_inputs(self.input)


def to_inputs(value: str | list[Any]) -> list[str] | list[list[int]]:
    """The request's `input` as a list of texts or a list of token-id sequences, each one non-empty."""
    if isinstance(value, str):
        return [check_text(value, "input")]
    if not value:
        raise InvalidRequest("'input' must not be an empty list", param="input")
    if len(value) > MAX_INPUTS:
        raise InvalidRequest(f"'input' holds at most {MAX_INPUTS} items", param="input")
    if is_token(value[0]):
        return [check_tokens(value, "input")]
    if isinstance(value[0], list):
        return [check_tokens(item, f"input[{i}]") for i, item in enumerate(value)]
    return [check_text(item, f"input[{i}]") for i, item in enumerate(value)]


def check_text(item: object, param: str) -> str:
    if not isinstance(item, str):
        raise InvalidRequest(f"'{param}' must be a string: 'input' is {INPUT_KINDS}", param=param)
    if not item:
        raise InvalidRequest(f"'{param}' must not be an empty string", param=param)
    return item


def check_tokens(item: object, param: str) -> list[int]:
    if not isinstance(item, list) or not item:
        raise InvalidRequest(f"'{param}' must be a non-empty list of token ids", param=param)
    for i, token in enumerate(item):
        if not is_token(token) or not 0 <= token <= MAX_TOKEN_ID:
            at = f"{param}[{i}]"
            raise InvalidRequest(f"'{at}' must be a token id (an integer from 0 to {MAX_TOKEN_ID})", param=at)
    return item


def is_token(item: object) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)


def output_options(config: ModelConfig) -> EmbeddingOutput:
    """`truncate` and `truncate_dimensions`; a kind that cannot embed has neither (its worker refuses)."""
    options = config.backend_options
    return options if isinstance(options, EmbeddingOutput) else EmbeddingOutput()


def fit_dimensions(vectors: np.ndarray, dimensions: int | None, config: ModelConfig) -> np.ndarray:
    native = vectors.shape[1]
    if dimensions is None or dimensions == native:
        return vectors
    if not output_options(config).truncate_dimensions:
        raise InvalidRequest(
            f"model {config.name!r} makes {native}-dimensional embeddings and cannot shorten them; leave "
            f"out 'dimensions' or set it to {native}",
            param="dimensions",
        )
    if dimensions > native:
        raise InvalidRequest(f"model {config.name!r} makes at most {native} dimensions", param="dimensions")
    kept = vectors[:, :dimensions]
    return kept / np.maximum(np.linalg.norm(kept, axis=1, keepdims=True), 1e-12)


def encode(vector: np.ndarray, encoding_format: str) -> np.ndarray | str:
    if encoding_format == "base64":  # little-endian float32, as OpenAI sends it
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return vector  # orjson writes it as a list of numbers


def json_response(data: dict) -> web.Response:
    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
    return web.Response(body=body, content_type="application/json")


def response(body: EmbeddingsRequest, vectors: np.ndarray, prompt_tokens: int) -> dict:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v, body.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": body.model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


@routes.post("/v1/embeddings")
async def embeddings(request: web.Request) -> web.Response:
    body = await parse_body(request, EmbeddingsRequest)
    inputs = body.inputs()
    require(request, body.model, EMBEDDINGS)
    async with request.app[MANAGER].use(body.model) as worker:
        truncate = output_options(worker.config).truncate
        result = await worker.embed(inputs, truncate=truncate)
        vectors = fit_dimensions(result.vectors, body.dimensions, worker.config)
    return json_response(response(body, vectors, result.prompt_tokens))
