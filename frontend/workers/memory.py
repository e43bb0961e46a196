"""Measuring a worker's memory, and predicting a model's before it is loaded."""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil

from onebox_common.model_config import ModelConfig

MiB = 1024 * 1024
# A worker with nothing loaded: Python, gRPC, numpy and the backend's library.
WORKER_OVERHEAD_BYTES = 96 * MiB


def resident_bytes(pid: int) -> int:
    """Resident memory of a process and all its children, 0 when it is gone."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_info().rss
    return total


def weights_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return 0


def kv_cache_bytes(weights: int, context_size: int) -> int:
    """A rough KV cache size for a llama.cpp model, without reading the GGUF's architecture.

    Per token it is 2 (K and V) x layers x KV heads x head size x 2 bytes (f16); across common models
    that grows roughly with the weights: ~23 KiB a token for a 135M model, ~128 KiB for an 8B one. The
    measured size replaces this estimate once the model has been loaded once.
    """
    per_token = 16 * 1024 + weights // 32768
    return per_token * context_size


def predict_footprint(config: ModelConfig) -> int:
    weights = weights_bytes(config.path) * widening(config)
    kv = kv_cache_bytes(weights, config.context_size) if config.backend == "llama-cpp" else 0
    return WORKER_OVERHEAD_BYTES + weights + kv


def system_memory() -> tuple[int, int]:
    """(total, available) bytes of the machine."""
    memory = psutil.virtual_memory()
    return memory.total, memory.available


def widening(config: ModelConfig) -> int:
    """How much larger than on disk the weights are once loaded.

    Half-precision diffusers weights (`variant: fp16`) become float32 on a CPU unless the model asks for
    a 16-bit dtype; on a GPU this overestimates until the first measurement replaces it.
    """
    options = config.options
    half_on_disk = config.backend == "diffusion" and options.get("variant") in {"fp16", "bf16"}
    kept_half = options.get("dtype") in {"float16", "bfloat16"}
    return 2 if half_on_disk and not kept_half else 1
