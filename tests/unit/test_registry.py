"""onebox_common/registry.py: which YAML wins a duplicated name, symlinked weights, missing weights."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from onebox_common.registry import ModelRegistry


def write(models_path: Path, filename: str, name: str, file: str = "w.gguf") -> None:
    (models_path / filename).write_text(yaml.safe_dump({"name": name, "backend": "llama-cpp", "file": file}))


@pytest.mark.parametrize("files", [("a.yaml", "b.yaml"), ("a.yml", "b.yaml"), ("a.yaml", "b.yml")])
def test_the_first_file_alphabetically_wins_a_duplicated_name_and_the_second_is_blamed(
    models_path: Path, caplog: pytest.LogCaptureFixture, files: tuple[str, str]
) -> None:
    first, second = files
    (models_path / "w.gguf").write_bytes(b"x")
    (models_path / "other.gguf").write_bytes(b"x")
    write(models_path, second, "same", file="other.gguf")
    write(models_path, first, "same")
    with caplog.at_level(logging.ERROR):
        models = ModelRegistry(models_path).all()
    assert [m.file for m in models] == ["w.gguf"]
    error = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert error.getMessage().startswith(f"skipping {second}: ")
    assert first in error.getMessage()


def test_a_weights_folder_linked_from_elsewhere_is_served(models_path: Path, tmp_path: Path) -> None:
    shared = tmp_path / "hf-cache" / "snapshot"
    shared.mkdir(parents=True)
    (shared / "model.gguf").write_bytes(b"x")
    (models_path / "shared").symlink_to(shared, target_is_directory=True)
    write(models_path, "shared.yaml", "shared", file="shared/model.gguf")
    [model] = ModelRegistry(models_path).all()
    assert model.path.read_bytes() == b"x"


def test_missing_weights_are_listed_with_a_warning(
    models_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(models_path, "hand.yaml", "hand", file="hand/model.gguf")
    with caplog.at_level(logging.WARNING):
        [model] = ModelRegistry(models_path).all()
    assert model.name == "hand"
    assert any(
        r.levelno == logging.WARNING and "model hand: weights hand/model.gguf are missing" in r.getMessage()
        for r in caplog.records
    )


def test_weights_that_appear_are_noticed_without_touching_the_yaml(
    models_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(models_path, "late.yaml", "late", file="late.gguf")
    registry = ModelRegistry(models_path)
    registry.all()
    (models_path / "late.gguf").write_bytes(b"x")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        registry.all()
        (models_path / "late.gguf").unlink()
        registry.all()
    warnings = [r for r in caplog.records if "are missing" in r.getMessage()]
    assert len(warnings) == 1  # read again when they came (no warning), and again when they went
