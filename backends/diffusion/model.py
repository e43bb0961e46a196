"""The `diffusion` backend: a diffusers text-to-image pipeline, on CUDA when torch sees one, else the CPU.

The model's `file` is a diffusers pipeline folder (model_index.json and its component folders) or a single
checkpoint file (.safetensors / .ckpt) loaded with `from_single_file`; `options.config` may name a local
pipeline folder that gives such a checkpoint its component configs. Options: DiffusionOptions in
onebox_common/options.py.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

# Weights come only from the models directory: never let diffusers or transformers wait on a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # progress bars flood the worker log

from backends.errors import InvalidRequest, LoadFailed, OutOfMemory, WorkerError
from backends.options import load_options
from onebox_common.options import DiffusionOptions
from onebox_proto import backend_pb2 as pb

try:
    import diffusers
    import torch
except ImportError as missing:  # an optional extra: say how to get it rather than show a traceback
    raise LoadFailed(
        f"the diffusion backend needs the `diffusion` extra ({missing.name} is missing): "
        "pip install torch==2.13.0 && pip install -e '.[diffusion]'"
    ) from missing

log = logging.getLogger("onebox.worker.diffusion")
diffusers.utils.logging.disable_progress_bar()


class Cancelled(WorkerError):
    code = grpc.StatusCode.CANCELLED


class DiffusionModel:
    def __init__(self, request: pb.LoadModelRequest) -> None:
        started = time.perf_counter()
        self._options = load_options(DiffusionOptions, request.options_json)
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        if request.threads:
            torch.set_num_threads(request.threads)
        dtype = torch_dtype(self._options.dtype, self._device)
        self._pipe = load_pipeline(Path(request.model_path), self._options, dtype).to(self._device)
        self._pipe.set_progress_bar_config(disable=True)
        if self._options.scheduler:
            self._pipe.scheduler = scheduler_class(self._options.scheduler).from_config(
                self._pipe.scheduler.config
            )
        # A pipeline keeps per-call state (the scheduler's timesteps): one generation at a time.
        self._lock = threading.Lock()
        self._load_seconds = time.perf_counter() - started
        log.info(
            "%s on %s (%s), scheduler %s",
            type(self._pipe).__name__, self._device, dtype, type(self._pipe.scheduler).__name__,
        )  # fmt: skip

    def describe(self) -> pb.LoadModelResponse:
        return pb.LoadModelResponse(has_chat_template=False, context_size=0, load_seconds=self._load_seconds)

    def GenerateImage(
        self, request: pb.GenerateImageRequest, context: grpc.ServicerContext
    ) -> pb.GenerateImageResponse:
        seed = request.seed if request.HasField("seed") else secrets.randbits(63)
        guidance = request.guidance_scale if request.HasField("guidance_scale") else None
        # A CPU generator gives the same noise, so the same image for a seed, on every device.
        generator = torch.Generator("cpu").manual_seed(seed)
        with self._lock, torch.inference_mode():
            try:
                result = self._pipe(
                    prompt=request.prompt,
                    negative_prompt=request.negative_prompt or None,
                    width=request.width,
                    height=request.height,
                    num_inference_steps=request.steps or self._options.steps,
                    guidance_scale=self._options.guidance_scale if guidance is None else guidance,
                    num_images_per_prompt=request.n or 1,
                    generator=generator,
                    callback_on_step_end=stop_when_cancelled(context),
                    output_type="pil",
                )
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                if self._device == "cuda":
                    torch.cuda.empty_cache()
                raise OutOfMemory(
                    f"out of memory making {request.n or 1} image(s) of {request.width}x{request.height}; "
                    "ask for fewer or smaller images"
                ) from error
        return pb.GenerateImageResponse(images=[png_bytes(image) for image in result.images])


def load_pipeline(path: Path, options: DiffusionOptions, dtype: torch.dtype) -> Any:
    if path.is_file():
        pipeline = pipeline_class(options.pipeline, single_file=True)
        config = {"config": str(inside(path.parent, options.config))} if options.config else {}
        return pipeline.from_single_file(str(path), dtype=dtype, local_files_only=True, **config)
    if not (path / "model_index.json").is_file():
        raise LoadFailed(f"{path} is neither a checkpoint file nor a diffusers folder (no model_index.json)")
    pipeline = pipeline_class(options.pipeline, single_file=False)
    # fp16 weights load into a float32 pipeline on the CPU too: diffusers casts them to `dtype`
    variant = {"variant": options.variant} if options.variant else {}
    return pipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True, **variant)


def pipeline_class(name: str, single_file: bool) -> Any:
    if name == "auto":
        # A folder names its pipeline in model_index.json; a bare checkpoint does not, so assume SD 1.x.
        return diffusers.StableDiffusionPipeline if single_file else diffusers.AutoPipelineForText2Image
    found = getattr(diffusers, name, None)
    if not (isinstance(found, type) and issubclass(found, diffusers.DiffusionPipeline)):
        raise InvalidRequest(f"option 'pipeline': {name!r} is not a diffusers pipeline class")
    if single_file and not hasattr(found, "from_single_file"):
        raise InvalidRequest(f"option 'pipeline': {name} cannot load a single checkpoint file")
    return found


def scheduler_class(name: str) -> Any:
    found = getattr(diffusers, name, None)
    if not (isinstance(found, type) and issubclass(found, diffusers.SchedulerMixin)):
        raise InvalidRequest(f"option 'scheduler': {name!r} is not a diffusers scheduler class")
    return found


def torch_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        # float16 on the CPU is slow and, for some ops, missing
        return torch.float16 if device == "cuda" else torch.float32
    return getattr(torch, name)


def stop_when_cancelled(context: grpc.ServicerContext) -> Callable[..., dict]:
    def check(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        if not context.is_active():
            raise Cancelled("the client cancelled the request")
        return callback_kwargs

    return check


def is_out_of_memory(error: BaseException) -> bool:
    # CUDA raises a type of its own; torch's CPU allocator raises a plain RuntimeError, told apart only
    # by its message.
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def inside(folder: Path, relative: str) -> Path:
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise InvalidRequest(f"{relative!r} points outside the model's folder")
    return path
