"""An ONNX transformer encoder: token-id sequences in, one pooled vector per sequence out.

Sequences are sorted by length and run in chunks of at most `batch_size`, each padded only to its own
longest member, then put back in input order. A chunk's padding is masked out, so a text gets the same
vector alone or inside any batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from backends.embeddings.pooling import pool
from backends.errors import InvalidRequest, Unsupported

REQUIRED_INPUTS = {"input_ids", "attention_mask"}
OPTIONAL_INPUTS = {"token_type_ids"}


class OnnxEncoder:
    def __init__(self, path: Path, threads: int, pooling: str, batch_size: int, pad_id: int = 0) -> None:
        self._session = ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )
        names = {i.name for i in self._session.get_inputs()}
        if not names >= REQUIRED_INPUTS or names - REQUIRED_INPUTS - OPTIONAL_INPUTS:
            raise Unsupported(
                f"{path.name} takes inputs {sorted(names)}; this backend feeds "
                f"{sorted(REQUIRED_INPUTS | OPTIONAL_INPUTS)}"
            )
        self._token_types = "token_type_ids" in names
        self._output = self._session.get_outputs()[0].name
        self._pooling = pooling
        self._pad_id = pad_id
        self.batch_size = batch_size
        # One run at load: it tells the width of the vectors and pays ONNX Runtime's first-run cost.
        self.dimensions = int(self._run([[pad_id, pad_id]]).shape[1])

    def encode(
        self,
        sequences: Sequence[Sequence[int]],
        is_active: Callable[[], bool],
        type_ids: Sequence[Sequence[int]] | None = None,
    ) -> np.ndarray:
        """One vector per sequence, in input order; stops between chunks if the caller went away.

        `type_ids` marks the segments of text pairs (a cross-encoder's query and document); none: all 0.
        """
        out = np.empty((len(sequences), self.dimensions), np.float32)
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        for start in range(0, len(order), self.batch_size):
            if not is_active():
                raise InvalidRequest("cancelled")
            chunk = order[start : start + self.batch_size]
            types = None if type_ids is None else [type_ids[i] for i in chunk]
            out[chunk] = self._run([sequences[i] for i in chunk], types)
        return out

    def _run(self, sequences: list[Sequence[int]], type_ids: list[Sequence[int]] | None = None) -> np.ndarray:
        ids, mask = pad(sequences, self._pad_id)
        feed = {"input_ids": ids, "attention_mask": mask}
        if self._token_types:
            feed["token_type_ids"] = np.zeros_like(ids) if type_ids is None else pad(type_ids, 0)[0]
        hidden = self._session.run([self._output], feed)[0]
        return pool(hidden, mask, self._pooling)


def pad(sequences: list[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to the longest sequence: (ids, mask), both int64 (batch, tokens)."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, np.int64)
    mask = np.zeros((len(sequences), width), np.int64)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = 1
    return ids, mask


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ONNX Runtime's threads spin between runs by default: on a box shared with the frontend and other
    # workers that steals their cores (measured here: 2-3x slower under load, no gain when idle).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options
