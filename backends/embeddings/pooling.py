"""Token vectors to sentence vectors, and sentence vectors to similarity scores (numpy only)."""

from __future__ import annotations

import numpy as np

EPSILON = 1e-12


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """(batch, tokens, dims) and a (batch, tokens) mask of real tokens -> (batch, dims)."""
    if hidden.ndim == 2:  # the graph pools by itself (e.g. a `sentence_embedding` output)
        return hidden
    if mode == "cls":
        return hidden[:, 0]
    if mode == "lasttoken":  # sequences are right-padded
        return hidden[np.arange(len(hidden)), mask.sum(axis=1) - 1]
    weights = mask[..., None].astype(hidden.dtype)
    if mode == "max":
        return np.where(weights > 0, hidden, -np.inf).max(axis=1)
    summed = (hidden * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), EPSILON)
    return summed / (np.sqrt(counts) if mode == "mean_sqrt_len" else counts)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, EPSILON)


def cosine_scores(query: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """Cosine similarity of one query vector to each row of documents."""
    return (
        l2_normalize(np.asarray(documents, np.float32)) @ l2_normalize(np.asarray(query, np.float32)[None])[0]
    )
