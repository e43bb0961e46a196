"""Reading a request body into a typed request object: the edge where validation happens, once."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ValidationError

from frontend.api.limits import CONFIG_CONTEXT, body_deadline, server_config
from frontend.config import ServerConfig
from frontend.errors import InvalidRequest, UnsupportedMediaType
from onebox_common.names import MODEL_NAME, MODEL_NAME_RULE

T = TypeVar("T", bound=BaseModel)


def model_name(value: str) -> str:
    """A model name as a client sent it (body field, path or query): checked here, looked up later."""
    if not MODEL_NAME.fullmatch(value):
        raise InvalidRequest(
            f"invalid model name: {MODEL_NAME_RULE}", param="model", code="invalid_model_name"
        )
    return value


# The `model` field of every request model: a bad name is refused before anything else is looked at.
ModelName = Annotated[str, AfterValidator(model_name)]


# An escaped UTF-16 surrogate without its other half: valid JSON syntax, but no Unicode character, and it
# fails later (tokenizers, encoders) wherever the text is turned back into bytes.
LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
JSON_TYPES = ("application/json",)
# Bodies decoded and validated off the event loop: large ones (json.loads alone takes ~10 ms a MB), and
# any that names a field whose validation builds a grammar (found by a byte search: a false hit costs
# only the thread hop).
OFFLOAD_BYTES = 256 * 1024
OFFLOAD_FIELDS = (b'"tools"', b'"response_format"', b'"grammar"')


async def read_json(request: web.Request) -> object:
    return decode_json(await read_body(request), request.content_type)


async def read_body(request: web.Request) -> bytes:
    async with body_deadline(request):
        raw = await request.read()  # aiohttp enforces the body-size limit here (413)
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object", code="invalid_json")
    return raw


def decode_json(raw: bytes, content_type: str) -> object:
    # A JSON content type is what a web page cannot send cross-site without a CORS preflight ("simple"
    # requests are limited to text/plain and form types), so requiring it keeps pages from driving the API.
    if content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: application/json' (got {content_type!r})"
        )
    try:
        body = json.loads(raw, parse_constant=refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidRequest(f"the request body is not valid JSON: {error}", code="invalid_json") from None
    except RecursionError:
        raise InvalidRequest("the request body is nested too deeply", code="invalid_json") from None
    except ValueError as error:  # NaN/Infinity (refuse_constant), an integer of more than 4300 digits
        raise InvalidRequest(f"the request body is not accepted: {error}", code="invalid_json") from None
    if b"\\u" in raw and LONE_SURROGATE.search(raw):
        raise InvalidRequest(
            "the request body holds an unpaired UTF-16 surrogate escape", code="invalid_json"
        )
    return body


def refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number JSON allows")


async def parse_body(request: web.Request, model: type[T]) -> T:
    """The body as `model`, validated against this server's limits.

    A body that may build a grammar (tools, response_format, grammar: up to a second of CPU) is decoded
    and validated in a thread, so that the event loop keeps serving everyone else meanwhile; a small
    plain body is not, as the thread hop (~160 us) costs several times its validation (~25 us).
    """
    raw = await read_body(request)
    config = server_config(request.app)
    if len(raw) > OFFLOAD_BYTES or any(field in raw for field in OFFLOAD_FIELDS):
        return await asyncio.to_thread(decode_and_parse, model, raw, request.content_type, config)
    return decode_and_parse(model, raw, request.content_type, config)


def decode_and_parse(model: type[T], raw: bytes, content_type: str, config: ServerConfig) -> T:
    body = decode_json(raw, content_type)
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    return parse(model, body, config)


def parse(model: type[T], data: dict, config: ServerConfig | None = None) -> T:
    try:
        return model.model_validate(data, strict=True, context={CONFIG_CONTEXT: config})
    except ValidationError as error:
        raise validation_error(error) from None


def validation_error(error: ValidationError) -> InvalidRequest:
    first = error.errors()[0]
    param = param_path(first["loc"])
    message = first["msg"]
    if first["type"] == "missing":
        message = "this field is required"
    elif first["type"] == "extra_forbidden":
        message = "unknown field"
    return InvalidRequest(f"invalid value for '{param}': {message}", param=param, code="invalid_value")


def param_path(loc: tuple) -> str:
    """('messages', 0, 'role') -> 'messages[0].role', the way OpenAI names nested parameters.

    Pydantic adds the name of the union member it tried ('str', 'list[str]', 'function-after[...]');
    those are not field names, so they are left out.
    """
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif "[" in part or part in {"str", "int", "float", "bool", "list", "dict"}:
            continue
        else:
            path += f".{part}" if path else part
    return path
