"""A model's `options:` as a worker receives them (LoadModelRequest.options_json), parsed once at load with
the typed model the front end validated the YAML with (onebox_common/options.py)."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from backends.errors import InvalidRequest
from onebox_common.options import BackendOptions, problem

T = TypeVar("T", bound=BackendOptions)


def load_options(model: type[T], options_json: str) -> T:
    try:
        return model.from_json(options_json)
    except ValidationError as error:
        # The front end refuses such a YAML before a worker starts; this guards a direct caller (bench/).
        raise InvalidRequest(problem(error, "options")) from None
