"""The `options:` of a diffusion model's YAML, parsed once when the worker loads the model.

options:
  pipeline: StableDiffusionPipeline   # a diffusers pipeline class; "auto" reads model_index.json
  scheduler: EulerDiscreteScheduler   # a diffusers scheduler class; "" keeps the pipeline's own
  steps: 25                           # default inference steps
  guidance_scale: 7.5                 # default classifier-free guidance
  dtype: auto                         # auto (float16 on CUDA, float32 on CPU), float32, float16, bfloat16
  config: ""                          # for a single checkpoint file: a pipeline folder beside it
  variant: ""                         # weights saved as *.<variant>.safetensors (e.g. fp16); "": plain names
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import Any

from backends.errors import InvalidRequest

DTYPES = ("auto", "float32", "float16", "bfloat16")
VARIANT = re.compile(r"[A-Za-z0-9_]{1,32}")  # a part of a file name: never a path


@dataclass(frozen=True)
class Options:
    pipeline: str = "auto"
    scheduler: str = ""
    steps: int = 25
    guidance_scale: float = 7.5
    dtype: str = "auto"
    config: str = ""
    variant: str = ""

    @classmethod
    def parse(cls, options_json: str) -> Options:
        raw: dict[str, Any] = json.loads(options_json or "{}")
        values = {f.name: raw[f.name] for f in fields(cls) if f.name in raw}
        if isinstance(values.get("guidance_scale"), int):
            values["guidance_scale"] = float(values["guidance_scale"])
        for f in fields(cls):
            if f.name in values and type(values[f.name]) is not type(getattr(cls, f.name)):
                raise InvalidRequest(f"option {f.name!r} must be a {f.type}, got {values[f.name]!r}")
        options = cls(**values)
        if not 1 <= options.steps <= 500:
            raise InvalidRequest(f"option 'steps' must be between 1 and 500, got {options.steps}")
        if options.guidance_scale < 0:
            raise InvalidRequest(f"option 'guidance_scale' must be >= 0, got {options.guidance_scale}")
        if options.variant and not VARIANT.fullmatch(options.variant):
            raise InvalidRequest(f"option 'variant' must be a plain word like fp16, got {options.variant!r}")
        if options.dtype not in DTYPES:
            raise InvalidRequest(f"option 'dtype' must be one of {', '.join(DTYPES)}, got {options.dtype!r}")
        return options
