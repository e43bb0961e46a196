"""Reading a request body into a typed request object: the edge where validation happens, once."""

from __future__ import annotations

import json
import re
from typing import Annotated, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ValidationError

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


async def read_json(request: web.Request) -> object:
    raw = await request.read()  # aiohttp enforces the body-size limit here (413)
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object", code="invalid_json")
    # A JSON content type is what a web page cannot send cross-site without a CORS preflight ("simple"
    # requests are limited to text/plain and form types), so requiring it keeps pages from driving the API.
    if request.content_type not in JSON_TYPES and not request.content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: application/json' (got {request.content_type!r})"
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
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    return parse(model, body)


def parse(model: type[T], data: dict) -> T:
    try:
        return model.model_validate(data, strict=True)
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
