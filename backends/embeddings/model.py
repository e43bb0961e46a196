"""The `embeddings` backend: a sentence-embedding model as an ONNX graph plus its tokenizer.json.

The model folder holds the ONNX graph, the tokenizer and, where the model has them, sentence-transformers'
modules.json, 1_Pooling/config.json and sentence_bert_config.json, which choose pooling, normalisation
and the token window. Rerank scores documents by the cosine of their vectors to the query's.

With `options.cross_encoder: true` the graph is a reranker instead: it reads a (query, document) pair and
outputs one logit, and Rerank's score is its sigmoid (sentence-transformers' CrossEncoder default).
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import grpc
from tokenizers import Tokenizer

from backends.embeddings.encoder import OnnxEncoder
from backends.embeddings.inputs import check_ids, fit_window, input_param, too_long
from backends.embeddings.pooling import cosine_scores, l2_normalize
from backends.embeddings.sentence_config import read_sentence_config
from backends.errors import InvalidRequest, Unsupported
from backends.options import load_options
from onebox_common.options import EmbeddingsOptions
from onebox_proto import backend_pb2 as pb

log = logging.getLogger("onebox.worker.embeddings")


class EmbeddingsModel:
    def __init__(self, request: pb.LoadModelRequest) -> None:
        started = time.perf_counter()
        folder = Path(request.model_path)
        options = load_options(EmbeddingsOptions, request.options_json)
        sentence = read_sentence_config(folder)
        self._window = min(options.max_seq_length or sentence.window, request.context_size or sentence.window)
        tokenizer_path = inside(folder, options.tokenizer_file)
        self._tokenizer = load_tokenizer(tokenizer_path, self._window)
        self._plain = load_tokenizer(tokenizer_path, window=None)  # for Tokenize: cuts nothing
        self._vocab = self._tokenizer.get_vocab_size(with_added_tokens=True)
        self._normalize = sentence.normalize
        self._encoder = OnnxEncoder(
            inside(folder, options.onnx_file),
            threads=request.threads or os.cpu_count() or 1,
            pooling=sentence.pooling,
            batch_size=options.batch_size,
            pad_id=pad_id(self._tokenizer),
        )
        self._cross_encoder = options.cross_encoder
        if self._cross_encoder and self._encoder.dimensions != 1:
            raise Unsupported(
                f"a cross-encoder outputs one logit per pair; this graph outputs {self._encoder.dimensions}"
            )
        self._load_seconds = time.perf_counter() - started
        log.info(
            "%d-dimensional embeddings, %s pooling, normalized: %s, window %d tokens",
            self._encoder.dimensions, sentence.pooling, self._normalize, self._window,
        )  # fmt: skip

    def describe(self) -> pb.LoadModelResponse:
        return pb.LoadModelResponse(
            has_chat_template=False, context_size=self._window, load_seconds=self._load_seconds
        )

    # --- RPCs -------------------------------------------------------------------------------------

    def Embed(self, request: pb.EmbedRequest, context: grpc.ServicerContext) -> pb.EmbedResponse:
        if self._cross_encoder:
            raise InvalidRequest(
                "this model is a reranker (a cross-encoder) and cannot make embeddings; use /v1/rerank",
                param="model",
            )
        sequences = self._sequences(request)
        vectors = self._encoder.encode(sequences, context.is_active)
        if self._normalize:
            vectors = l2_normalize(vectors)
        return pb.EmbedResponse(
            embeddings=[pb.Embedding(values=v) for v in vectors.tolist()],
            prompt_tokens=sum(len(s) for s in sequences),
        )

    def Rerank(self, request: pb.RerankRequest, context: grpc.ServicerContext) -> pb.RerankResponse:
        # A long document is judged by its first window of tokens rather than refused, as rerankers do.
        if self._cross_encoder:
            return self._rerank_pairs(request, context)
        sequences = self._tokenize([request.query, *request.documents], truncate=True)
        vectors = self._encoder.encode(sequences, context.is_active)
        return pb.RerankResponse(
            scores=cosine_scores(vectors[0], vectors[1:]).tolist(),
            prompt_tokens=sum(len(s) for s in sequences),
        )

    def Tokenize(self, request: pb.TokenizeRequest, context: grpc.ServicerContext) -> pb.TokenizeResponse:
        encoding = self._plain.encode(request.text, add_special_tokens=request.add_special)
        return pb.TokenizeResponse(tokens=encoding.ids)

    def Detokenize(
        self, request: pb.DetokenizeRequest, context: grpc.ServicerContext
    ) -> pb.DetokenizeResponse:
        check_ids(request.tokens, self._vocab, "tokens")
        return pb.DetokenizeResponse(text=self._plain.decode(list(request.tokens), skip_special_tokens=False))

    def _rerank_pairs(self, request: pb.RerankRequest, context: grpc.ServicerContext) -> pb.RerankResponse:
        encodings = self._tokenizer.encode_batch([(request.query, d) for d in request.documents])
        sequences = [e.ids for e in encodings]
        logits = self._encoder.encode(sequences, context.is_active, [e.type_ids for e in encodings])
        return pb.RerankResponse(
            scores=[sigmoid(x) for x in logits[:, 0].tolist()], prompt_tokens=sum(map(len, sequences))
        )

    # --- inputs -----------------------------------------------------------------------------------

    def _sequences(self, request: pb.EmbedRequest) -> list[list[int]]:
        if not request.token_inputs:
            return self._tokenize(list(request.texts), request.truncate)
        sequences = [list(t.ids) for t in request.token_inputs]
        for i, ids in enumerate(sequences):
            check_ids(ids, self._vocab, input_param(i, len(sequences)))
        return fit_window(sequences, self._window, request.truncate)

    def _tokenize(self, texts: list[str], truncate: bool) -> list[list[int]]:
        # The tokenizer truncates to the window by itself and keeps what it cut off in `overflowing`.
        encodings = self._tokenizer.encode_batch(texts)
        for i, encoding in enumerate(encodings):
            if encoding.overflowing and not truncate:
                raise too_long(input_param(i, len(texts)), self._window)
        return [encoding.ids for encoding in encodings]


def load_tokenizer(path: Path, window: int | None) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    # Padding is done per chunk by the encoder; truncation marks (in `overflowing`) what is too long.
    tokenizer.no_padding()
    if window is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length=window)
    return tokenizer


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def pad_id(tokenizer: Tokenizer) -> int:
    for token in ("[PAD]", "<pad>"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return found
    return 0


def inside(folder: Path, relative: str) -> Path:
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise InvalidRequest(f"{relative!r} points outside the model's folder")
    return path
