"""/v1/rerank served by a cross-encoder: a tiny random-weight one built here (no reranker ships on PyPI).

The graph sums (token + segment) vectors over the real tokens of each (query, document) pair and maps the
sum to one logit, so its scores can be recomputed in numpy: equal scores show the server tokenizes the pair,
marks its segments, pads and masks the batch, and applies the sigmoid as a cross-encoder expects.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from tests.e2e.conftest import OneboxServer

pytestmark = pytest.mark.e2e

MODEL = "tiny-reranker"
HIDDEN = 8
QUERY = "What is the speed of light?"
DOCUMENTS = ["Cats sleep a lot.", "Light travels very fast.", "Paris is the capital of France.", "the"]
WORDS = sorted({word.strip("?.").lower() for text in (QUERY, *DOCUMENTS) for word in text.split()})


def make_tokenizer() -> Tokenizer:
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tokenizer


def make_weights(vocab: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "tokens": rng.normal(size=(vocab, HIDDEN)).astype(np.float32),
        "segments": rng.normal(size=(2, HIDDEN)).astype(np.float32),
        "head": (rng.normal(size=(HIDDEN, 1)) / HIDDEN).astype(np.float32),
    }


def make_graph(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Gather", ["tokens", "input_ids"], ["token_vectors"]),
        helper.make_node("Gather", ["segments", "token_type_ids"], ["segment_vectors"]),
        helper.make_node("Add", ["token_vectors", "segment_vectors"], ["vectors"]),
        helper.make_node("Unsqueeze", ["attention_mask", "last_axis"], ["mask_3d"]),
        helper.make_node("Cast", ["mask_3d"], ["mask_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["vectors", "mask_float"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "token_axis"], ["summed"], keepdims=0),
        helper.make_node("MatMul", ["summed", "head"], ["logits"]),
    ]
    constants = [numpy_helper.from_array(array, name) for name, array in weights.items()]
    constants += [
        numpy_helper.from_array(np.array([-1], np.int64), "last_axis"),
        numpy_helper.from_array(np.array([1], np.int64), "token_axis"),
    ]
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])]
    graph = helper.make_graph(nodes, "tiny-cross-encoder", inputs, outputs, constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what any onnxruntime >= 1.14 reads
    onnx.checker.check_model(model)
    return model


def expected_score(tokenizer: Tokenizer, weights: dict[str, np.ndarray], document: str) -> float:
    pair = tokenizer.encode(QUERY, document)
    summed = (weights["tokens"][pair.ids] + weights["segments"][pair.type_ids]).sum(axis=0)
    return float(1 / (1 + np.exp(-(summed @ weights["head"])[0])))


@pytest.fixture(scope="module")
def reranker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OneboxServer, list[float]]]:
    models_path = tmp_path_factory.mktemp("rerank") / "models"
    folder = models_path / MODEL
    folder.mkdir(parents=True)
    tokenizer = make_tokenizer()
    weights = make_weights(tokenizer.get_vocab_size())
    tokenizer.save(str(folder / "tokenizer.json"))
    onnx.save(make_graph(weights), str(folder / "model.onnx"))
    (models_path / f"{MODEL}.yaml").write_text(
        f"name: {MODEL}\nbackend: embeddings\nfile: {MODEL}\noptions:\n  cross_encoder: true\n"
    )
    server = OneboxServer(models_path)
    yield server, [expected_score(tokenizer, weights, d) for d in DOCUMENTS]
    server.stop()


def post(server: OneboxServer, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json={"model": MODEL, **body}, timeout=60)


def test_cross_encoder_scores_each_pair_as_the_model_does(reranker) -> None:
    server, expected = reranker
    reply = post(server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS})
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [r["index"] for r in results] == sorted(range(len(DOCUMENTS)), key=lambda i: -expected[i])
    for result in results:
        assert result["relevance_score"] == pytest.approx(expected[result["index"]], abs=1e-5)
        assert result["document"] == {"text": DOCUMENTS[result["index"]]}


def test_cross_encoder_judges_a_long_document_by_its_start(reranker) -> None:
    server, _ = reranker
    reply = post(server, "/rerank", {"query": QUERY, "documents": ["light " * 1000, "cats"], "top_n": 1})
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["results"]) == 1


def test_cross_encoder_refuses_to_make_embeddings(reranker) -> None:
    server, _ = reranker
    reply = post(server, "/v1/embeddings", {"input": QUERY})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == "model"
    assert "/v1/rerank" in reply.json()["error"]["message"]
