"""Cold start and model swap latency for the default chat model, beside the warm time to first token.

    .venv/bin/python bench/cold_start.py [--rounds 5] [--models-path models]

All three are time to first token of a streamed chat request, measured in one run on one server:
- cold: the model is not loaded (POST /backend/shutdown before each), so the request spawns its worker;
- swap: `--max-active-backends 1` and another model loaded, so the request evicts it, then starts its own;
- warm: the model's worker is loaded and idle.
Goal (issue 6): cold start under 1.5 s on these machines.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from harness import REPO, linked_models_dir, onebox_server, request, time_to_first_token

MODEL = "smollm2-135m-instruct"
OTHER = "smollm2-swap-partner"
PROMPT = "What is the capital of France?"
GOAL_COLD_S = 1.5


def measure(port: int, rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"cold": [], "swap": [], "warm": []}
    time_to_first_token(port, MODEL, PROMPT)  # page the weights in once, as any second start finds them
    for _ in range(rounds):
        request(port, "POST", "/backend/shutdown", {"model": MODEL})
        results["cold"].append(time_to_first_token(port, MODEL, PROMPT))
        results["warm"].append(time_to_first_token(port, MODEL, PROMPT))
        time_to_first_token(port, OTHER, PROMPT)  # evicts MODEL (at most one backend)
        results["swap"].append(time_to_first_token(port, MODEL, PROMPT))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models-path", type=Path, default=REPO / "models")
    args = parser.parse_args()
    yaml = (args.models_path / f"{MODEL}.yaml").read_text()
    models = linked_models_dir(args.models_path, {OTHER: yaml.replace(f"name: {MODEL}", f"name: {OTHER}")})
    with onebox_server(models, "--max-active-backends", "1") as port:
        results = measure(port, args.rounds)
    warm = statistics.median(results["warm"])
    print(f"{MODEL}, {args.rounds} rounds, median time to first token:")
    for kind, values in results.items():
        median = statistics.median(values)
        print(f"  {kind:5s} {median * 1000:8.1f} ms   ({median / warm:5.1f}x warm)   all: "
              + ", ".join(f"{v * 1000:.0f}" for v in values))  # fmt: skip
    cold = statistics.median(results["cold"])
    print(f"cold start goal < {GOAL_COLD_S:.1f} s: {'PASS' if cold < GOAL_COLD_S else 'MISS'} ({cold:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
