"""Embeddings as a model's YAML configures them: truncation, shorter dimensions, and a GGUF through llama-cpp.

These need YAMLs the default set does not have, so they run against a server of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import CHAT_MODEL, MODELS, OneboxServer, link_tree

pytestmark = pytest.mark.e2e

MINILM = "all-minilm-l6-v2"
LENIENT = "minilm-lenient"  # truncates long inputs, and lets `dimensions` shorten vectors
GGUF_EMBED = "smollm2-embed"  # the chat model's GGUF loaded for embeddings: its tokens averaged here
GGUF_POOLED = "smollm2-embed-pooled"  # the same, averaged by llama.cpp (`options.pooling: mean`)
FOOD, BREAD, MOVIE = "A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneboxServer]:
    if not (MODELS / MINILM / "model.onnx").is_file() or not (MODELS / CHAT_MODEL).is_dir():
        pytest.fail("the default models are not installed: run `make models` (make test does)")
    models = tmp_path_factory.mktemp("embeddings") / "models"
    for name in (MINILM, CHAT_MODEL):
        link_tree(MODELS / name, models / name)
    write_yamls(models)
    srv = OneboxServer(models)
    yield srv
    srv.stop()


def write_yamls(models: Path) -> None:
    (models / f"{LENIENT}.yaml").write_text(
        f"name: {LENIENT}\nbackend: embeddings\nfile: {MINILM}\n"
        "options:\n  truncate: true\n  truncate_dimensions: true\n"
    )
    (models / f"{GGUF_EMBED}.yaml").write_text(
        f"name: {GGUF_EMBED}\nbackend: llama-cpp\nfile: {CHAT_MODEL}/SmolLM2-135M-Instruct.Q4_1.gguf\n"
        "embeddings: true\n"
    )
    (models / f"{GGUF_POOLED}.yaml").write_text(
        f"name: {GGUF_POOLED}\nbackend: llama-cpp\nfile: {CHAT_MODEL}/SmolLM2-135M-Instruct.Q4_1.gguf\n"
        "embeddings: true\noptions:\n  pooling: mean\n"
    )


def embed(server: OneboxServer, model: str, **body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/embeddings", json={"model": model, **body}, timeout=120)


def vectors(server: OneboxServer, model: str, texts: str | list, **body: object) -> np.ndarray:
    reply = embed(server, model, input=texts, **body)
    assert reply.status_code == 200, reply.text
    return np.array([d["embedding"] for d in reply.json()["data"]], dtype=np.float32)


def test_truncating_model_embeds_the_start_of_a_long_input(server) -> None:
    long = "word " * 300
    reply = embed(server, LENIENT, input=[long, long + "and more words at the end"])
    assert reply.status_code == 200, reply.text
    first, second = (np.array(d["embedding"]) for d in reply.json()["data"])
    np.testing.assert_allclose(first, second, atol=1e-5)  # what differs lies past the window
    assert reply.json()["usage"]["prompt_tokens"] == 2 * 256


def test_shorter_dimensions_keep_the_first_components_renormalised(server) -> None:
    full = vectors(server, LENIENT, FOOD)[0]
    short = vectors(server, LENIENT, FOOD, dimensions=128)[0]
    assert short.shape == (128,)
    assert np.linalg.norm(short) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(short, full[:128] / np.linalg.norm(full[:128]), atol=1e-5)


def test_more_dimensions_than_the_model_has_are_refused(server) -> None:
    reply = embed(server, LENIENT, input=FOOD, dimensions=512)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "dimensions"


def test_gguf_model_with_embeddings_true_embeds(server) -> None:
    food, bread, movie = vectors(server, GGUF_EMBED, [FOOD, BREAD, MOVIE])
    assert food.shape == (576,)
    assert np.linalg.norm(food) == pytest.approx(1.0, abs=1e-4)
    assert food @ bread > food @ movie


def test_gguf_text_alone_and_in_a_batch_gives_nearly_the_same_vector(server) -> None:
    alone = vectors(server, GGUF_EMBED, BREAD)[0]
    batch = vectors(server, GGUF_EMBED, [FOOD, MOVIE * 4, BREAD])
    # llama.cpp's quantised kernels round a little differently with the batch's shape: 1e-5 is for ONNX
    assert batch[2] @ alone > 0.9995


def test_gguf_pooling_by_llama_cpp_agrees_with_averaging_its_tokens(server) -> None:
    ours = vectors(server, GGUF_EMBED, [FOOD, MOVIE])
    theirs = vectors(server, GGUF_POOLED, [FOOD, MOVIE])
    assert (ours * theirs).sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-3)


def test_gguf_input_longer_than_its_batch_is_refused(server) -> None:
    reply = embed(server, GGUF_EMBED, input=["short", "word " * 600])
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == "input[1]"


def test_gguf_model_reranks_by_cosine(server) -> None:
    documents = [
        "The cat sat on the mat.",
        "Light is very fast: about 300,000 km per second.",
        "Bread is food.",
    ]
    reply = httpx.post(
        f"{server.url}/v1/rerank",
        json={"model": GGUF_EMBED, "query": "How fast is light?", "documents": documents},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["results"][0]["index"] == 1
