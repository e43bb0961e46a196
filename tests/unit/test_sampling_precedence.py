"""Each sampling value comes from the request, else the YAML `parameters`, else llama.cpp's default."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontend.api.parsing import parse
from frontend.api.text.chat import ChatCompletionRequest
from frontend.api.text.request import DEFAULT_MIN_P, DEFAULT_TEMPERATURE, DEFAULT_TOP_K, DEFAULT_TOP_P
from onebox_common.model_config import ModelConfig

USER = [{"role": "user", "content": "hi"}]
YAML_PARAMETERS = {"temperature": 0.3, "top_p": 0.7, "top_k": 11, "min_p": 0.2, "repeat_penalty": 1.3,
                   "max_tokens": 77}  # fmt: skip


def model(parameters: dict | None = None) -> ModelConfig:
    return ModelConfig.model_validate(
        {"name": "m", "backend": "llama-cpp", "file": "m.gguf", "parameters": parameters or {}}
    ).model_copy(update={"path": Path("m.gguf")})


def generation(config: ModelConfig, **request: object):  # type: ignore[no-untyped-def]
    body = parse(ChatCompletionRequest, {"model": "m", "messages": USER, **request})
    return body.generation(config, [], 0)


def test_without_request_or_yaml_values_llama_cpp_defaults_apply() -> None:
    g = generation(model())
    assert (g.sampling.temperature, g.sampling.top_p, g.sampling.top_k, g.sampling.min_p) == (
        DEFAULT_TEMPERATURE, DEFAULT_TOP_P, DEFAULT_TOP_K, DEFAULT_MIN_P)  # fmt: skip
    assert g.sampling.repeat_penalty == 1.0
    assert g.max_tokens is None


def test_yaml_parameters_replace_the_defaults() -> None:
    g = generation(model(YAML_PARAMETERS))
    s = g.sampling
    assert (s.temperature, s.top_p, s.top_k, s.min_p, s.repeat_penalty) == (0.3, 0.7, 11, 0.2, 1.3)
    assert g.max_tokens == 77


def test_request_values_win_over_the_yaml() -> None:
    g = generation(model(YAML_PARAMETERS), temperature=1.1, top_p=0.9, top_k=5, min_p=0.01,
                   repeat_penalty=1.05, max_tokens=9)  # fmt: skip
    s = g.sampling
    assert (s.temperature, s.top_p, s.top_k, s.min_p, s.repeat_penalty) == (1.1, 0.9, 5, 0.01, 1.05)
    assert g.max_tokens == 9


@pytest.mark.parametrize("zero", ["temperature", "top_k", "min_p"])
def test_a_request_zero_is_a_value_not_unset(zero: str) -> None:
    g = generation(model(YAML_PARAMETERS), **{zero: 0})
    assert getattr(g.sampling, zero) == 0


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert generation(model(YAML_PARAMETERS), max_tokens=9, max_completion_tokens=4).max_tokens == 4


def test_seed_differs_per_choice_so_n_choices_differ_and_repeat() -> None:
    body = parse(ChatCompletionRequest, {"model": "m", "messages": USER, "seed": 7, "n": 2})
    assert [body.generation(model(), [], i).sampling.seed for i in range(2)] == [7, 8]
