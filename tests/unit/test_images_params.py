"""frontend/api/images/routes.py parsing, frontend/api/images/files.py names and sweeping, the diffusion
backend's OOM and options."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from frontend.api.images.files import GeneratedFiles
from frontend.api.images.routes import ImageRequest
from frontend.api.parsing import parse
from frontend.errors import InvalidRequest


def request(**fields: object) -> dict:
    return {"model": "tiny-sd", "prompt": "a lighthouse at dusk", **fields}


def rejected_param(body: dict) -> str | None:
    with pytest.raises(InvalidRequest) as caught:
        parse(ImageRequest, body)
    assert caught.value.status == 400
    return caught.value.param


def test_defaults_give_one_512_square_image_as_b64_json() -> None:
    generation = parse(ImageRequest, request()).to_generation()
    assert (generation.width, generation.height, generation.n) == (512, 512, 1)
    assert generation.seed is None and generation.steps is None
    assert parse(ImageRequest, request()).response_format == "b64_json"


def test_extensions_reach_the_generation() -> None:
    body = request(size="64x128", n=4, seed=5, negative_prompt="fog", steps=3, guidance_scale=1)
    generation = parse(ImageRequest, body).to_generation()
    assert (generation.width, generation.height, generation.n, generation.seed) == (64, 128, 4, 5)
    assert (generation.negative_prompt, generation.steps, generation.guidance_scale) == ("fog", 3, 1.0)


@pytest.mark.parametrize("size", ["63x64", "64x2056", "56x64", "4096x4096", "512", "512x512x3", "ax b", ""])
def test_bad_size_is_rejected_naming_size(size: str) -> None:
    assert rejected_param(request(size=size)) == "size"


def test_bad_size_message_says_what_is_accepted() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(ImageRequest, request(size="100x100"))
    assert "multiples of 8 from 64 to 2048" in caught.value.message


@pytest.mark.parametrize("n", [0, 5, -1])
def test_n_out_of_range_is_rejected(n: int) -> None:
    assert rejected_param(request(n=n)) == "n"


@pytest.mark.parametrize("prompt", ["", " \n\t"])
def test_empty_prompt_is_rejected(prompt: str) -> None:
    assert rejected_param(request(prompt=prompt)) == "prompt"


def test_unknown_response_format_is_rejected() -> None:
    assert rejected_param(request(response_format="jpeg")) == "response_format"


def test_openai_only_fields_are_ignored() -> None:
    assert parse(ImageRequest, request(quality="hd", style="vivid", user="u")).n == 1


def test_saved_file_is_found_by_its_name_only(tmp_path: Path) -> None:
    files = GeneratedFiles(tmp_path / "generated", max_age=60)
    name = files.save_png(b"png bytes")
    assert len(name) == 36 and name.endswith(".png")
    assert files.find(name) == tmp_path / "generated" / name
    assert files.save_png(b"png bytes") != name
    (tmp_path / "secret.png").write_bytes(b"x")
    for bad in ("../secret.png", name[:-4], name + "/", name.replace(".png", ".txt"), ".." + name[2:]):
        assert files.find(bad) is None


def test_sweep_removes_only_old_generated_files(tmp_path: Path) -> None:
    files = GeneratedFiles(tmp_path, max_age=60)
    old, new = files.save_png(b"old"), files.save_png(b"new")
    other = tmp_path / "keep-me.png"
    other.write_bytes(b"not ours")
    for path in (tmp_path / old, other):
        os.utime(path, (0, 0))
    assert files.sweep() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new, "keep-me.png"])


def test_sweep_of_a_missing_folder_removes_nothing(tmp_path: Path) -> None:
    assert GeneratedFiles(tmp_path / "absent", max_age=1).sweep() == 0


class RaisingPipeline:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __call__(self, **kwargs: object) -> object:
        raise self.error


class ActiveContext:
    def is_active(self) -> bool:
        return True


@pytest.mark.parametrize(
    "error",
    [MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9")],
)
def test_diffusion_out_of_memory_becomes_resource_exhausted(error: Exception) -> None:
    pytest.importorskip("diffusers")
    import grpc

    from backends.diffusion.model import DiffusionModel
    from backends.errors import OutOfMemory
    from onebox_common.options import DiffusionOptions
    from onebox_proto import backend_pb2 as pb

    model = object.__new__(DiffusionModel)
    model._pipe, model._options, model._device = RaisingPipeline(error), DiffusionOptions(), "cpu"
    model._lock = threading.Lock()
    with pytest.raises(OutOfMemory) as caught:
        model.GenerateImage(pb.GenerateImageRequest(prompt="x", width=64, height=64, n=1), ActiveContext())
    assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "64x64" in caught.value.message


def test_diffusion_other_errors_pass_through() -> None:
    pytest.importorskip("diffusers")
    from backends.diffusion.model import DiffusionModel
    from onebox_common.options import DiffusionOptions
    from onebox_proto import backend_pb2 as pb

    model = object.__new__(DiffusionModel)
    model._pipe, model._options, model._device = RaisingPipeline(ValueError("bad")), DiffusionOptions(), "cpu"
    model._lock = threading.Lock()
    with pytest.raises(ValueError):
        model.GenerateImage(pb.GenerateImageRequest(prompt="x", width=64, height=64, n=1), ActiveContext())


def test_diffusion_options_are_checked() -> None:
    from backends.errors import InvalidRequest as WorkerInvalid
    from backends.options import load_options
    from onebox_common.options import DiffusionOptions

    assert load_options(DiffusionOptions, '{"steps": 4, "guidance_scale": 2}').guidance_scale == 2.0
    assert load_options(DiffusionOptions, '{"variant": "fp16"}').variant == "fp16"
    bad_options = ('{"steps": 0}', '{"steps": "4"}', '{"dtype": "int8"}', '{"guidance_scale": -1}',
                   '{"variant": "../x"}')  # fmt: skip
    for bad in bad_options:
        with pytest.raises(WorkerInvalid):
            load_options(DiffusionOptions, bad)
