"""Image generation time through onebox against the same diffusers pipeline in-process.

    .venv/bin/python bench/images.py [--rounds 5] [--steps 4] [--sizes 64x64,256x256] [--threads 2]
                                     [--models-path M --model NAME]

Without --models-path it builds the tests' tiny random-weight Stable Diffusion pipeline in a temp folder.
In-process is the worker's own model class (backends/diffusion/model.py) called directly, with no server,
RPC or HTTP in between; onebox is POST /v1/images/generations (b64_json) on a real server. Both use the
same seed, steps and thread count. Each round runs every size on both sides one after the other (never at
once: they share the CPU cores), alternating which side goes first; the figure is the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backends.diffusion.model import DiffusionModel  # noqa: E402
from onebox_common.model_config import load_model_config  # noqa: E402
from onebox_proto import backend_pb2 as pb  # noqa: E402
from tests.e2e.conftest import OneboxServer  # noqa: E402
from tests.e2e.test_images import MODEL, build_tiny_pipeline  # noqa: E402

log = logging.getLogger("bench.images")
SEED = 1234


class FakeContext:
    def is_active(self) -> bool:
        return True


def tiny_models(folder: Path, steps: int) -> Path:
    models = folder / "models"
    build_tiny_pipeline(models / MODEL)
    (models / f"{MODEL}.yaml").write_text(
        f"name: {MODEL}\nbackend: diffusion\nfile: {MODEL}\noptions:\n  steps: {steps}\n"
    )
    return models


def in_process(model: DiffusionModel, width: int, height: int, steps: int) -> float:
    request = pb.GenerateImageRequest(
        prompt="a lighthouse at dusk", width=width, height=height, steps=steps, n=1, seed=SEED
    )
    started = time.perf_counter()
    model.GenerateImage(request, FakeContext())
    return time.perf_counter() - started


def through_onebox(url: str, name: str, width: int, height: int, steps: int) -> float:
    body = {"model": name, "prompt": "a lighthouse at dusk", "size": f"{width}x{height}", "steps": steps,
            "seed": SEED, "response_format": "b64_json"}  # fmt: skip
    started = time.perf_counter()
    reply = httpx.post(f"{url}/v1/images/generations", json=body, timeout=600)
    elapsed = time.perf_counter() - started
    reply.raise_for_status()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--sizes", default="64x64,256x256")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models-path", type=Path)
    parser.add_argument("--model", default=MODEL)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sizes = [tuple(int(side) for side in size.split("x")) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-images-") as temp:
        models = args.models_path or tiny_models(Path(temp), args.steps)
        config = load_model_config(models / f"{args.model}.yaml", models)
        started = time.perf_counter()
        model = DiffusionModel(
            pb.LoadModelRequest(
                model=config.name, backend="diffusion", model_path=str(config.path), threads=args.threads,
                options_json=json.dumps(config.options),
            )
        )  # fmt: skip
        log.info("in-process load: %.2fs", time.perf_counter() - started)
        server = OneboxServer(models, "--threads", str(args.threads), "--generated-path", f"{temp}/generated")
        try:
            started = time.perf_counter()
            through_onebox(server.url, args.model, 64, 64, 1)  # starts and loads the worker
            first = time.perf_counter() - started
            log.info("onebox first request (worker start + load + 1 step): %.2fs", first)
            report(model, server.url, args, sizes)
        finally:
            server.stop()
    return 0


def report(model: DiffusionModel, url: str, args: argparse.Namespace, sizes: list) -> None:
    times: dict[tuple, list[float]] = {}
    for width, height in sizes:  # warm both sides at each size
        in_process(model, width, height, args.steps)
        through_onebox(url, args.model, width, height, args.steps)
    for round_ in range(args.rounds):
        for width, height in sizes:
            sides = [
                ("in-process", lambda w=width, h=height: in_process(model, w, h, args.steps)),
                ("onebox", lambda w=width, h=height: through_onebox(url, args.model, w, h, args.steps)),
            ]
            for side, run in sides if round_ % 2 == 0 else reversed(sides):
                times.setdefault((width, height, side), []).append(run())
    log.info("%-10s %-10s %12s %12s %9s", "size", "steps", "in-process", "onebox", "overhead")
    for width, height in sizes:
        local = statistics.median(times[(width, height, "in-process")])
        served = statistics.median(times[(width, height, "onebox")])
        log.info(
            "%-10s %-10d %10.1fms %10.1fms %+8.1fms",
            f"{width}x{height}", args.steps, local * 1000, served * 1000, (served - local) * 1000,
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
