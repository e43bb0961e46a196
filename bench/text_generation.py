"""Streamed chat generation through onebox against llama-cpp-python in-process: same model, same prompts.

    .venv/bin/python bench/text_generation.py [--rounds 5] [--max-tokens 128] [--port 0] [--models-path M]

Concurrency 1, greedy, fixed seed, the YAML's other sampling parameters. Each round runs every prompt on
both sides in turn (never at once: they share the cores), alternating which goes first; both see the prompts
in the same order, so llama.cpp's prompt-prefix cache helps them equally. TTFT: request start to the first
token with text. tok/s: (tokens - 1) / time from the first to the last token with text.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
from harness import REPO, onebox_server
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from onebox_common.model_config import ModelConfig, load_model_config

SEED = 1234
PROMPTS = (
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a bicycle works, part by part, for a curious ten-year-old.",
    "Describe a walk through a busy market in a city by the sea.",
)
SYSTEM = "You are a helpful assistant."
GOAL_RATIO = 0.95
GOAL_TTFT_MS = 15.0


@dataclass(frozen=True)
class Sample:
    ttft_s: float
    tokens_per_s: float
    tokens: int
    text: str


def timing(started: float, marks: list[float], tokens: int, text: str) -> Sample:
    if not marks:
        raise RuntimeError("the generation produced no text")
    return Sample(marks[0] - started, (tokens - 1) / max(marks[-1] - marks[0], 1e-9), tokens, text)


def messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def sampling(config: ModelConfig) -> dict[str, float]:
    """The model YAML's sampling parameters, greedy: what a production request gets, made repeatable."""
    params = config.parameters.model_dump(exclude_none=True, exclude={"max_tokens"})
    return {**params, "temperature": 0.0}


def onebox_chat(port: int, model: str, params: dict[str, float], prompt: str, max_tokens: int) -> Sample:
    body = json.dumps({
        "model": model, "messages": messages(prompt), "max_tokens": max_tokens, "seed": SEED,
        "stream": True, "stream_options": {"include_usage": True}, **params,
    }).encode()  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    marks: list[float] = []
    pieces: list[str] = []
    tokens, started = 0, time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"onebox answered {response.status}: {response.read().decode(errors='replace')}")
    while line := response.readline():
        if not line.startswith(b"data: {"):
            continue
        now, chunk = time.perf_counter(), json.loads(line[6:])
        if "error" in chunk:
            raise RuntimeError(f"onebox stream failed: {chunk['error']}")
        if chunk["choices"] and (text := chunk["choices"][0]["delta"].get("content")):
            marks.append(now)
            pieces.append(text)
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
    conn.close()
    return timing(started, marks, tokens, "".join(pieces))


class InProcess:
    """The model loaded as the worker loads it, generated with no server, RPC or HTTP in between."""

    def __init__(self, config: ModelConfig, params: dict[str, float], threads: int) -> None:
        self.llm = llama_cpp.Llama(
            model_path=str(config.path), n_ctx=config.context_size, n_threads=threads,
            n_threads_batch=threads, n_batch=int(config.options.get("batch_size", 512)), verbose=False,
        )  # fmt: skip
        model = self.llm._model
        self.formatter = Jinja2ChatFormatter(
            template=config.template.chat or self.llm.metadata["tokenizer.chat_template"],
            eos_token=model.token_get_text(model.token_eos()),
            bos_token=model.token_get_text(model.token_bos()),
        )
        # Llama.generate's defaults for what the YAML leaves out are those the server falls back on.
        self.kwargs = {"temp" if k == "temperature" else k: v for k, v in params.items()}

    def chat(self, prompt: str, max_tokens: int) -> Sample:
        marks: list[float] = []
        pieces: list[str] = []
        tokens, started = 0, time.perf_counter()
        text = self.formatter(messages=messages(prompt)).prompt
        prompt_tokens = self.llm.tokenize(text.encode(), add_bos=False, special=True)
        self.llm.set_seed(SEED)
        for token in self.llm.generate(prompt_tokens, **self.kwargs):
            if llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token):
                break
            tokens += 1
            if piece := self.llm.detokenize([token], special=False).decode(errors="replace"):
                marks.append(time.perf_counter())
                pieces.append(piece)
            if tokens >= max_tokens:
                break
        return timing(started, marks, tokens, "".join(pieces))


def run(args: argparse.Namespace) -> dict[str, list[Sample]]:
    config = load_model_config(args.models_path / f"{args.model}.yaml", args.models_path)
    params = sampling(config)
    threads = args.threads or os.cpu_count() or 1  # the server's rule for --threads 0
    local = InProcess(config, params, threads)
    samples: dict[str, list[Sample]] = {"onebox": [], "in-process": []}
    # The worker generates on a gRPC pool thread, not the thread that loaded the model: so does this.
    with (
        ThreadPoolExecutor(1) as pool,
        onebox_server(
            args.models_path, "--preload", args.model, "--threads", str(args.threads), port=args.port
        ) as port,
    ):
        sides = {
            "onebox": lambda p: onebox_chat(port, args.model, params, p, args.max_tokens),
            "in-process": lambda p: pool.submit(local.chat, p, args.max_tokens).result(),
        }
        for side in sides.values():  # warm-up; also leaves both prompt caches in the same state
            side(PROMPTS[-1])
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for prompt in PROMPTS:
                for name in order:
                    samples[name].append(sides[name](prompt))
    return samples


def report(samples: dict[str, list[Sample]], max_tokens: int, threads: int) -> None:
    def values(name: str, field: str) -> list[float]:
        return [getattr(s, field) * (1000 if field == "ttft_s" else 1) for s in samples[name]]

    def median(name: str, field: str) -> float:
        return statistics.median(values(name, field))

    runs, load = len(samples["onebox"]), os.getloadavg()[0]
    print(f"\nconcurrency 1, {runs} runs per side, max_tokens {max_tokens}, {threads} threads, "
          f"load average {load:.1f} on {os.cpu_count()} cores; median (min-max)")  # fmt: skip
    print(f"{'':12}{'tok/s':>22}{'TTFT ms':>22}{'tokens':>8}")
    for name in samples:
        cells = [f"{median(name, f):.1f} ({min(values(name, f)):.0f}-{max(values(name, f)):.0f})"
                 for f in ("tokens_per_s", "ttft_s")]  # fmt: skip
        print(f"{name:12}{cells[0]:>22}{cells[1]:>22}{median(name, 'tokens'):8.0f}")
    pairs = list(zip(samples["onebox"], samples["in-process"], strict=True))
    ratio = median("onebox", "tokens_per_s") / median("in-process", "tokens_per_s")
    overhead = median("onebox", "ttft_s") - median("in-process", "ttft_s")
    paired_ratio = statistics.median(a.tokens_per_s / b.tokens_per_s for a, b in pairs)
    paired_overhead = statistics.median((a.ttft_s - b.ttft_s) * 1000 for a, b in pairs)
    print(f"throughput ratio {ratio:.3f} (goal >= {GOAL_RATIO}) {'PASS' if ratio >= GOAL_RATIO else 'MISS'}"
          f"  [median of paired ratios {paired_ratio:.3f}]")  # fmt: skip
    print(f"TTFT overhead {overhead:+.1f} ms (goal <= {GOAL_TTFT_MS:.0f} ms) "
          f"{'PASS' if overhead <= GOAL_TTFT_MS else 'MISS'}  [median of paired differences "
          f"{paired_overhead:+.1f} ms]")  # fmt: skip
    same = all(a.text == b.text for a, b in pairs)
    print(f"identical outputs on both sides: {'yes' if same else 'NO (the comparison is suspect)'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--port", type=int, default=0, help="onebox port; 0 picks a free one")
    parser.add_argument("--models-path", type=Path, default=REPO / "models")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=0, help="threads on both sides; 0: every core")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so that the server is stopped too
    report(run(args), args.max_tokens, args.threads or os.cpu_count() or 1)


if __name__ == "__main__":
    main()
