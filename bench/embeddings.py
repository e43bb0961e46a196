"""Embeddings per second through onebox against the same ONNX model in-process, batches of 1 and 32.

    .venv/bin/python bench/embeddings.py [--rounds 5] [--requests 20] [--port 0] [--models-path M]

Concurrency 1. In-process is the worker's own model class (tokenizer, ONNX session, pooling) called on a
pool thread as the gRPC server calls it, with no server, RPC or HTTP in between. Each round runs every
case on both sides one after the other (never at once: they share the CPU cores), alternating which side
goes first; the figure for a case is the median over rounds of (inputs embedded / seconds). onebox is
measured with both encodings: base64 (the openai client's default) and float (JSON numbers).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import REPO, onebox_server

from backends.embeddings.model import EmbeddingsModel
from onebox_common.model_config import load_model_config
from onebox_proto import backend_pb2 as pb

GOAL_RATIO = 0.9  # onebox / in-process at batch 32
BATCHES = (1, 32)
SENTENCES = tuple(
    f"{subject} {verb} {thing} near the {place} every {time_}, for the {i + 1}th time."
    for i, (subject, verb, thing, place, time_) in enumerate(
        zip(
            ["The old fisherman", "A young student", "My neighbour", "The tired doctor"] * 8,
            ["repairs", "paints", "reads about", "photographs", "sells", "forgets", "finds", "studies"] * 4,
            ["a wooden boat", "the red bicycle", "ancient maps", "wild flowers"] * 8,
            ["harbour", "library", "train station", "market", "river", "old bridge", "park", "school"] * 4,
            ["morning", "evening", "weekend", "summer"] * 8,
            strict=True,
        )
    )
)


class FakeContext:
    """What the worker's model reads of a gRPC context."""

    def is_active(self) -> bool:
        return True


class InProcess:
    def __init__(self, models_path: Path, model: str) -> None:
        config = load_model_config(models_path / f"{model}.yaml", models_path)
        request = pb.LoadModelRequest(
            model=config.name, backend=config.backend, model_path=str(config.path),
            context_size=config.context_size, threads=os.cpu_count() or 1,
            options_json=json.dumps(config.options),
        )  # fmt: skip
        self.model = EmbeddingsModel(request)
        self.pool = ThreadPoolExecutor(max_workers=1)

    def embed(self, texts: list[str]) -> int:
        request = pb.EmbedRequest(texts=texts)
        reply = self.pool.submit(self.model.Embed, request, FakeContext()).result()
        return len(reply.embeddings)


def onebox_embed(conn: http.client.HTTPConnection, model: str, texts: list[str], encoding: str) -> int:
    body = json.dumps({"model": model, "input": texts, "encoding_format": encoding}).encode()
    conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"onebox answered {response.status}: {data.decode(errors='replace')}")
    return len(json.loads(data)["data"])


def rate(embed: Callable[[list[str]], int], batch: int, requests: int) -> float:
    """Inputs per second over `requests` calls of `batch` sentences each."""
    done = 0
    started = time.perf_counter()
    for i in range(requests):
        texts = [SENTENCES[(i * batch + j) % len(SENTENCES)] for j in range(batch)]
        done += embed(texts)
    return done / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> dict[tuple[str, int], list[float]]:
    local = InProcess(args.models_path, args.model)
    rates: dict[tuple[str, int], list[float]] = {}
    with onebox_server(args.models_path, "--preload", args.model, port=args.port) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        sides: dict[str, Callable[[list[str]], int]] = {
            "in-process": local.embed,
            "onebox base64": lambda texts: onebox_embed(conn, args.model, texts, "base64"),
            "onebox float": lambda texts: onebox_embed(conn, args.model, texts, "float"),
        }
        for embed in sides.values():  # warm-up
            rate(embed, max(BATCHES), 2)
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for batch in BATCHES:
                requests = args.requests if batch == 1 else max(2, args.requests // 4)
                for name in order:
                    rates.setdefault((name, batch), []).append(rate(sides[name], batch, requests))
        conn.close()
    local.pool.shutdown()
    return rates


def report(rates: dict[tuple[str, int], list[float]], rounds: int) -> None:
    def median(name: str, batch: int) -> float:
        return statistics.median(rates[(name, batch)])

    names = sorted({name for name, _ in rates}, key=lambda n: n != "in-process")
    print(f"\nconcurrency 1, {rounds} rounds, {os.cpu_count()} threads; embeddings per second (median)")
    print(f"{'':16}" + "".join(f"{f'batch {b}':>12}{'ratio':>8}" for b in BATCHES))
    for name in names:
        cells = "".join(
            f"{median(name, b):12.1f}{median(name, b) / median('in-process', b):8.3f}" for b in BATCHES
        )
        print(f"{name:16}{cells}")
    worst = min(median(n, 32) / median("in-process", 32) for n in names if n != "in-process")
    print(f"batch-32 ratio (worst encoding)  {worst:.3f}  (goal >= {GOAL_RATIO})  "
          f"{'PASS' if worst >= GOAL_RATIO else 'MISS'}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--requests", type=int, default=20, help="requests per round at batch 1 (a quarter at 32)"
    )
    parser.add_argument("--port", type=int, default=0, help="onebox port; 0 picks a free one")
    parser.add_argument("--models-path", type=Path, default=REPO / "models")
    parser.add_argument("--model", default="all-minilm-l6-v2")
    args = parser.parse_args()
    report(run(args), args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
