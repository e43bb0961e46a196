"""Embeddings from a GGUF model (a YAML with `embeddings: true`), decoded many sequences per batch.

llama-cpp-python's own `Llama.embed` takes only text and truncates silently; these functions take token
ids, so that token-id inputs work and an input that does not fit is refused or cut as the YAML says.
"""

from __future__ import annotations

from collections.abc import Sequence

import llama_cpp
import numpy as np

from backends.embeddings.inputs import check_ids, fit_window, input_param
from backends.embeddings.pooling import l2_normalize
from onebox_proto import backend_pb2 as pb

# `pooling` in the YAML's options (LlamaCppOptions checks the name); left out, the GGUF's own
POOLING = {
    "mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
    "cls": llama_cpp.LLAMA_POOLING_TYPE_CLS,
    "last": llama_cpp.LLAMA_POOLING_TYPE_LAST,
}


def pooling_type(name: str | None) -> int:
    return llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED if name is None else POOLING[name]


def window(llm: llama_cpp.Llama) -> int:
    """The longest sequence that fits one batch (all of a sequence must be decoded at once)."""
    return min(llm.n_batch, llm.n_ctx())


def tokenize(llm: llama_cpp.Llama, text: str) -> list[int]:
    return llm.tokenize(text.encode(), add_bos=True, special=False)


def embed_inputs(llm: llama_cpp.Llama, request: pb.EmbedRequest) -> list[list[int]]:
    if not request.token_inputs:
        return fit_window([tokenize(llm, t) for t in request.texts], window(llm), request.truncate)
    sequences = [list(t.ids) for t in request.token_inputs]
    for i, ids in enumerate(sequences):
        check_ids(ids, llm.n_vocab(), input_param(i, len(sequences)))
    return fit_window(sequences, window(llm), request.truncate)


def rerank_inputs(llm: llama_cpp.Llama, request: pb.RerankRequest) -> list[list[int]]:
    """The query, then each document; a long one is judged by its first window of tokens."""
    return [tokenize(llm, text)[: window(llm)] for text in [request.query, *request.documents]]


def embed_sequences(llm: llama_cpp.Llama, sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """One L2-normalised vector per sequence, in order. Each sequence must fit in one batch."""
    if not sequences:
        return np.zeros((0, llm.n_embd()), np.float32)
    vectors: list[np.ndarray] = []
    batch: list[Sequence[int]] = []
    for sequence in sequences:
        full = sum(map(len, batch)) + len(sequence) > llm.n_batch
        if batch and (full or len(batch) >= llm.context_params.n_seq_max):
            vectors.extend(decode(llm, batch))
            batch = []
        batch.append(sequence)
    vectors.extend(decode(llm, batch))
    llm.reset()  # the next generation must not reuse a prompt prefix from before these decodes
    return l2_normalize(np.stack(vectors))


def decode(llm: llama_cpp.Llama, batch: list[Sequence[int]]) -> list[np.ndarray]:
    llm._batch.reset()
    for seq_id, sequence in enumerate(batch):
        llm._batch.add_sequence(sequence, seq_id, True)
    llm._ctx.kv_cache_clear()
    llm._ctx.decode(llm._batch)
    llm._batch.reset()
    width = llm.n_embd()
    if llm.pooling_type() != llama_cpp.LLAMA_POOLING_TYPE_NONE:
        return [
            np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, i), shape=(width,)).copy()
            for i in range(len(batch))
        ]
    lengths = [len(s) for s in batch]
    tokens = np.ctypeslib.as_array(
        llama_cpp.llama_get_embeddings(llm._ctx.ctx), shape=(sum(lengths) * width,)
    ).reshape(-1, width)
    return [part.mean(axis=0) for part in np.split(tokens, np.cumsum(lengths)[:-1])]
