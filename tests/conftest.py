"""Fixtures every tier may use: a models folder in tmp_path, and a writer of model YAMLs into it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

WriteModel = Callable[..., Path]


@pytest.fixture
def models_path(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def write_model(models_path: Path) -> WriteModel:
    """Write models/<name>.yaml and its stand-in weights file, which holds the fake worker's `behaviour`
    as JSON (see tests/fakes/fake_worker.py); `fields` go into the YAML."""

    def write(name: str = "echo", behaviour: dict | None = None, **fields: object) -> Path:
        weights = models_path / f"{name}.gguf"
        weights.write_text(json.dumps(behaviour or {}))
        data = {"name": name, "backend": "llama-cpp", "file": weights.name, **fields}
        yaml_path = models_path / f"{name}.yaml"
        yaml_path.write_text(yaml.safe_dump(data))
        return yaml_path

    return write
