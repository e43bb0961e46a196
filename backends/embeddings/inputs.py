"""Checks on embedding inputs that every backend kind makes the same way, with the same messages."""

from __future__ import annotations

from collections.abc import Sequence

from backends.errors import InvalidRequest


def input_param(index: int, count: int) -> str:
    """How OpenAI names the input at fault: `input` for a single one, `input[i]` in a list."""
    return "input" if count == 1 else f"input[{index}]"


def too_long(param: str, window: int) -> InvalidRequest:
    return InvalidRequest(
        f"{param} is longer than this model's window of {window} tokens; shorten it, or set "
        "`options.truncate: true` in the model's YAML to embed only its start",
        param=param,
    )


def check_ids(ids: Sequence[int], vocab: int, param: str) -> None:
    if any(t < 0 or t >= vocab for t in ids):
        raise InvalidRequest(f"token ids must be between 0 and {vocab - 1}", param=param)


def fit_window(sequences: list[list[int]], window: int, truncate: bool) -> list[list[int]]:
    """Cut sequences to the window, or refuse the first one that is longer."""
    for i, sequence in enumerate(sequences):
        if len(sequence) > window and not truncate:
            raise too_long(input_param(i, len(sequences)), window)
    return [s[:window] for s in sequences]
