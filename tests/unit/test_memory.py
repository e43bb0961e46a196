"""Predicting a model's memory before its first load (the measurement replaces it afterwards)."""

from __future__ import annotations

from pathlib import Path

from frontend.workers.memory import WORKER_OVERHEAD_BYTES, predict_footprint
from onebox_common.model_config import ModelConfig


def folder_model(tmp_path: Path, backend: str, options: dict) -> ModelConfig:
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "weights.safetensors").write_bytes(b"\0" * 1000)
    return ModelConfig(name="m", backend=backend, file="m", options=options, path=tmp_path)


def test_fp16_diffusers_weights_count_double_when_loaded_as_float32(tmp_path: Path) -> None:
    config = folder_model(tmp_path, "diffusion", {"variant": "fp16"})
    assert predict_footprint(config) == WORKER_OVERHEAD_BYTES + 2000


def test_weights_kept_in_half_precision_count_once(tmp_path: Path) -> None:
    config = folder_model(tmp_path, "diffusion", {"variant": "fp16", "dtype": "float16"})
    assert predict_footprint(config) == WORKER_OVERHEAD_BYTES + 1000


def test_other_backends_count_their_files_as_they_are(tmp_path: Path) -> None:
    config = folder_model(tmp_path, "whisper", {})  # `variant` is a diffusion option: refused elsewhere
    assert predict_footprint(config) == WORKER_OVERHEAD_BYTES + 1000
