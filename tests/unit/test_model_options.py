"""onebox_common/options.py: each backend's `options:` are typed, checked when the YAML is read, and parsed by
the worker with the same model."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import get_args

import pytest
import yaml

from backends.errors import InvalidRequest as WorkerInvalid
from backends.options import load_options
from gallery.__main__ import default_entries
from gallery.index import builtin_index, parse_index
from gallery.installer import model_yaml
from onebox_common.model_config import BackendKind, ConfigError, ModelConfig, load_model_config
from onebox_common.options import (
    OPTIONS,
    DiffusionOptions,
    EmbeddingsOptions,
    LlamaCppOptions,
    TtsOptions,
    WhisperOptions,
)
from onebox_common.registry import ModelRegistry

REPO = Path(__file__).resolve().parents[2]


def write_yaml(folder: Path, name: str, backend: str, options: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "backend": backend, "file": name, "options": options}))
    return path


def test_every_backend_kind_has_an_options_model() -> None:
    assert set(OPTIONS) == set(get_args(BackendKind))


def test_misspelled_option_key_is_a_config_error_naming_the_file_and_the_key(models_path: Path) -> None:
    path = write_yaml(models_path, "tiny", "llama-cpp", {"batch_sise": 8})
    with pytest.raises(ConfigError, match=r"tiny\.yaml: key 'options\.batch_sise': Extra inputs"):
        load_model_config(path, models_path)


@pytest.mark.parametrize(
    ("backend", "options", "key"),
    [
        ("diffusion", {"steps": 0}, "steps"),
        ("diffusion", {"variant": "../x"}, "variant"),
        ("diffusion", {"dtype": "int8"}, "dtype"),
        ("embeddings", {"batch_size": "32"}, "batch_size"),
        ("embeddings", {"max_seq_length": -1}, "max_seq_length"),
        ("llama-cpp", {"pooling": "max"}, "pooling"),
        ("whisper", {"compute_type": "int4"}, "compute_type"),
        ("whisper", {"beam_size": 0}, "beam_size"),
        ("tts", {"onnx_file": 3}, "onnx_file"),
    ],
)
def test_bad_option_value_names_the_key(models_path: Path, backend: str, options: dict, key: str) -> None:
    path = write_yaml(models_path, "m", backend, options)
    with pytest.raises(ConfigError, match=rf"m\.yaml: key 'options\.{key}'"):
        load_model_config(path, models_path)


def test_options_are_checked_against_the_models_own_backend(models_path: Path) -> None:
    path = write_yaml(models_path, "m", "llama-cpp", {"compute_type": "int8"})  # a whisper option
    with pytest.raises(ConfigError, match=r"key 'options\.compute_type'"):
        load_model_config(path, models_path)


def test_typed_options_fill_in_the_defaults_and_keep_what_the_yaml_wrote(models_path: Path) -> None:
    config = load_model_config(write_yaml(models_path, "m", "diffusion", {"steps": 4}), models_path)
    assert config.options == {"steps": 4}
    assert config.backend_options == DiffusionOptions(steps=4)
    assert config.backend_options.guidance_scale == 7.5


def test_an_integer_is_a_float_option(models_path: Path) -> None:
    config = load_model_config(write_yaml(models_path, "m", "diffusion", {"guidance_scale": 2}), models_path)
    assert config.backend_options.guidance_scale == 2.0


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (LlamaCppOptions, {"batch_size": 512, "pooling": None, "truncate": False}),
        (EmbeddingsOptions, {"onnx_file": "model.onnx", "batch_size": 32, "max_seq_length": 0}),
        (WhisperOptions, {"compute_type": "int8", "beam_size": 5}),
        (TtsOptions, {"onnx_file": None}),
        (DiffusionOptions, {"pipeline": "auto", "steps": 25, "guidance_scale": 7.5, "dtype": "auto"}),
    ],
)
def test_defaults_are_the_backends_own(model: type, expected: dict) -> None:
    defaults = model.from_json("").model_dump()
    assert {key: defaults[key] for key in expected} == expected


def test_worker_parses_what_the_front_end_sends_into_the_same_options(models_path: Path) -> None:
    path = write_yaml(models_path, "m", "embeddings", {"cross_encoder": True, "truncate": True})
    config = load_model_config(path, models_path)
    sent = json.dumps(config.options)  # as frontend/workers/client.py sends LoadModelRequest.options_json
    assert load_options(EmbeddingsOptions, sent) == config.backend_options


def test_worker_refuses_bad_options_naming_the_key() -> None:
    with pytest.raises(WorkerInvalid, match=r"key 'options\.stepz'"):
        load_options(DiffusionOptions, '{"stepz": 3}')


@pytest.mark.parametrize("path", sorted((REPO / "models").glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_model_yamls_are_valid(path: Path) -> None:
    config = load_model_config(path, REPO / "models")
    assert isinstance(config.backend_options, OPTIONS[config.backend])


def test_the_default_models_have_valid_yamls() -> None:
    for entry in default_entries():
        load_model_config(REPO / "models" / f"{entry.name}.yaml", REPO / "models")


def test_the_configs_the_gallery_index_writes_are_valid(models_path: Path) -> None:
    entries = parse_index(builtin_index().read_text(), "index.yaml")
    assert any(entry.config and entry.config.get("options") for entry in entries)
    for entry in entries:
        data = model_yaml(entry, entry.name, {}, models_path)
        assert data is not None, entry.name
        path = models_path / f"{entry.name}.yaml"
        path.write_text(yaml.safe_dump(data))
        config = load_model_config(path, models_path)
        assert isinstance(config.backend_options, OPTIONS[config.backend]), entry.name


def test_registry_skips_a_yaml_with_a_bad_option_and_logs_file_and_key(
    models_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_yaml(models_path, "good", "whisper", {"beam_size": 2})
    write_yaml(models_path, "bad", "whisper", {"beam_sise": 2})
    with caplog.at_level(logging.ERROR, logger="onebox.config"):
        assert [m.name for m in ModelRegistry(models_path).all()] == ["good"]
    assert any("bad.yaml: key 'options.beam_sise'" in r.getMessage() for r in caplog.records)


def test_a_config_built_in_code_is_checked_too() -> None:
    with pytest.raises(ValueError, match=r"options\.beam_size"):
        ModelConfig(name="m", backend="whisper", file="m", options={"beam_size": "five"})
