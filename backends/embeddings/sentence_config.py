"""What a sentence-transformers model folder says about turning token vectors into one sentence vector.

A folder exported by sentence-transformers names its modules in modules.json (Transformer, Pooling,
Normalize), the pooling mode in <pooling path>/config.json and the token window in
sentence_bert_config.json. A folder without them gets the common recipe: mean pooling, L2 normalisation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.errors import Unsupported

DEFAULT_WINDOW = 512
# tokenizer_config.json says 1e30 when a tokenizer sets no limit of its own
NO_LIMIT = 1_000_000

# sentence-transformers' pooling flags, in the order it reads them
POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_lasttoken": "lasttoken",
}
# modules that need no weights of their own beyond the ONNX graph
KNOWN_MODULES = {"Transformer", "Pooling", "Normalize"}


@dataclass(frozen=True)
class SentenceConfig:
    pooling: str = "mean"
    normalize: bool = True
    window: int = DEFAULT_WINDOW


def read_sentence_config(folder: Path) -> SentenceConfig:
    modules = read_json(folder / "modules.json")
    window = read_window(folder)
    if not isinstance(modules, list):
        return SentenceConfig(window=window)
    by_type = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules if isinstance(m, dict)}
    unknown = sorted(set(by_type) - KNOWN_MODULES)
    if unknown:
        raise Unsupported(
            f"modules.json names modules this backend cannot run without torch: {', '.join(unknown)}"
        )
    pooling = "mean"
    if "Pooling" in by_type:
        pooling = pooling_mode(read_json(folder / by_type["Pooling"].get("path", "") / "config.json"))
    return SentenceConfig(pooling=pooling, normalize="Normalize" in by_type, window=window)


def pooling_mode(config: Any) -> str:
    if not isinstance(config, dict):
        return "mean"
    modes = [mode for flag, mode in POOLING_FLAGS.items() if config.get(flag)]
    unknown = [k for k, v in config.items() if k.startswith("pooling_mode_") and v and k not in POOLING_FLAGS]
    if len(modes) != 1 or unknown:
        raise Unsupported(
            f"pooling config {config} is not supported: exactly one of {', '.join(POOLING_FLAGS)} may be set"
        )
    return modes[0]


def read_window(folder: Path) -> int:
    """The longest input, in tokens, the model was trained to embed."""
    bert = read_json(folder / "sentence_bert_config.json")
    if isinstance(bert, dict) and isinstance(bert.get("max_seq_length"), int):
        return bert["max_seq_length"]
    tokenizer = read_json(folder / "tokenizer_config.json")
    limit = tokenizer.get("model_max_length") if isinstance(tokenizer, dict) else None
    if isinstance(limit, int | float) and 0 < limit < NO_LIMIT:
        return int(limit)
    model = read_json(folder / "config.json")
    if isinstance(model, dict) and isinstance(model.get("max_position_embeddings"), int):
        return model["max_position_embeddings"]
    return DEFAULT_WINDOW


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise Unsupported(f"cannot read {path.name}: {error}") from error
