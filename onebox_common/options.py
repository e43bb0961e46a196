"""The `options:` of a model's YAML: one typed model per backend kind, defined once for both processes.

The front end validates a YAML's options with these models when it reads the file (ModelConfig), so a typo
is an error naming the file and the key, not a failure at first use; the worker parses
LoadModelRequest.options_json with the same model when it loads. Defaults are the backends' own.
Strict: YAML already has types, so "512" for a number is a mistake to report, not a value to coerce.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class BackendOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @classmethod
    def from_json(cls, options_json: str) -> Self:
        """What a worker receives (LoadModelRequest.options_json); "" means the defaults."""
        return cls.model_validate_json(options_json or "{}")


class EmbeddingOutput(BackendOptions):
    """Read by the front end (frontend/api/embeddings.py) for every model that embeds."""

    # An input longer than the model's window: False refuses it (400), True embeds its first tokens.
    truncate: bool = False
    # A Matryoshka model: a request's shorter `dimensions` keeps the first components, renormalised.
    truncate_dimensions: bool = False


class LlamaCppOptions(EmbeddingOutput):
    """backend: llama-cpp (backends/llamacpp/)."""

    batch_size: int = Field(512, ge=1, description="llama.cpp's n_batch: prompt tokens decoded per step")
    # Embedding models only: how token vectors become one; None keeps the GGUF's own (a causal model has
    # none, and its token vectors are averaged).
    pooling: Literal["mean", "cls", "last"] | None = None


class EmbeddingsOptions(EmbeddingOutput):
    """backend: embeddings (backends/embeddings/): an ONNX graph and its tokenizer."""

    onnx_file: str = Field("model.onnx", min_length=1, description="the graph, inside the model folder")
    tokenizer_file: str = Field("tokenizer.json", min_length=1, description="inside the model folder")
    batch_size: int = Field(32, ge=1, description="inputs per ONNX run")
    max_seq_length: int = Field(0, ge=0, description="token window; 0: the model's own")
    # The graph reads a (query, document) pair and outputs one logit: a reranker, not an embedder.
    cross_encoder: bool = False


# CTranslate2's compute types ("float" is its alias of float32).
ComputeType = Literal[
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
    "float", "float32", "float16", "bfloat16",
]  # fmt: skip


class WhisperOptions(BackendOptions):
    """backend: whisper (backends/whisper/, faster-whisper)."""

    compute_type: ComputeType = Field("int8", description="CTranslate2's weight and compute precision")
    beam_size: int = Field(5, ge=1, description="beam search width when transcribing")


class TtsOptions(BackendOptions):
    """backend: tts (backends/tts/, Piper)."""

    # The .onnx graph inside the voice folder, when it holds more than one; None: its only one.
    onnx_file: str | None = None


class DiffusionOptions(BackendOptions):
    """backend: diffusion (backends/diffusion/, diffusers)."""

    pipeline: str = Field("auto", description='a diffusers pipeline class; "auto" reads model_index.json')
    scheduler: str = Field("", description='a diffusers scheduler class; "" keeps the pipeline\'s own')
    steps: int = Field(25, ge=1, le=500, description="default inference steps")
    guidance_scale: float = Field(7.5, ge=0, description="default classifier-free guidance")
    # auto: float16 on CUDA, float32 on CPU
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    config: str = Field("", description="for a single checkpoint file: a pipeline folder beside it")
    # Weights saved as *.<variant>.safetensors (e.g. fp16); "" for plain names. Part of a file name, never a
    # path, hence the pattern.
    variant: str = Field("", pattern=r"^[A-Za-z0-9_]{0,32}$")


OPTIONS: dict[str, type[BackendOptions]] = {
    "llama-cpp": LlamaCppOptions,
    "embeddings": EmbeddingsOptions,
    "whisper": WhisperOptions,
    "tts": TtsOptions,
    "diffusion": DiffusionOptions,
}


def problem(error: ValidationError, prefix: str = "") -> str:
    """The first thing wrong, as `key 'options.steps': <why>` (the form every config error takes)."""
    first = error.errors()[0]
    parts = [prefix] if prefix else []
    key = ".".join([*parts, *(str(part) for part in first["loc"])])
    return f"key {key!r}: {first['msg']}"
