"""/v1/embeddings and /v1/rerank against the real server and the real all-MiniLM-L6-v2 model."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from tokenizers import Tokenizer

from tests.e2e.conftest import CHAT_MODEL, MODELS, OneboxServer

pytestmark = pytest.mark.e2e

MODEL = "all-minilm-l6-v2"
FOOD, BREAD, MOVIE = "A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    if not (MODELS / MODEL / "model.onnx").is_file():
        pytest.fail(f"{MODEL} is not installed: run `make models` (make test does)")


def embed(server: OneboxServer, **body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/embeddings", json={"model": MODEL, **body}, timeout=120)


def vectors(server: OneboxServer, texts: str | list, **body: object) -> np.ndarray:
    reply = embed(server, input=texts, **body)
    assert reply.status_code == 200, reply.text
    return np.array([d["embedding"] for d in reply.json()["data"]], dtype=np.float32)


def assert_error(reply: httpx.Response, status: int, param: str | None) -> None:
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["param"] == param, reply.text


# --- embeddings -------------------------------------------------------------------------------------


def test_openai_client_gets_384_normalised_dimensions(client) -> None:
    reply = client.embeddings.create(model=MODEL, input=FOOD)  # the client asks for base64 by default
    vector = np.array(reply.data[0].embedding)
    assert vector.shape == (384,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
    assert reply.model == MODEL
    assert reply.usage.prompt_tokens == reply.usage.total_tokens > 2


def test_similar_sentences_are_closer_than_unrelated_ones(server) -> None:
    food, bread, movie = vectors(server, [FOOD, BREAD, MOVIE])
    assert food @ bread > 0.6
    assert food @ movie < 0.2


def test_text_alone_and_inside_a_batch_gives_the_same_vector(server) -> None:
    alone = vectors(server, BREAD)[0]
    batch = vectors(server, [FOOD, "a much longer sentence that makes the batch pad the others " * 5, BREAD])
    np.testing.assert_allclose(batch[2], alone, atol=1e-5)


def test_more_inputs_than_the_model_batch_size_come_back_in_order(server) -> None:
    texts = [f"sentence number {i} is about {'cats' if i % 2 else 'the stock market'}" for i in range(70)]
    batch = vectors(server, texts)
    assert batch.shape == (70, 384)
    for i in (0, 31, 32, 69):
        np.testing.assert_allclose(batch[i], vectors(server, texts[i])[0], atol=1e-5)


def test_base64_decodes_to_the_float_vector(server) -> None:
    floats = vectors(server, FOOD, encoding_format="float")[0]
    encoded = embed(server, input=FOOD, encoding_format="base64").json()["data"][0]["embedding"]
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(encoded), dtype="<f4"), floats, atol=1e-7)


def test_usage_counts_the_model_tokens(server) -> None:
    usage = embed(server, input=["hello world", "hello"]).json()["usage"]
    assert usage == {"prompt_tokens": 7, "total_tokens": 7}  # [CLS] hello world [SEP], [CLS] hello [SEP]


def test_token_ids_embed_like_their_text(server) -> None:
    tokenizer = Tokenizer.from_file(str(MODELS / MODEL / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128 tokens: padding ids would be embedded as tokens
    food, movie = (tokenizer.encode(t).ids for t in (FOOD, MOVIE))
    text = vectors(server, [FOOD, MOVIE])
    np.testing.assert_allclose(vectors(server, food)[0], text[0], atol=1e-5)
    np.testing.assert_allclose(vectors(server, [food, movie]), text, atol=1e-5)


def test_ids_from_the_tokenize_endpoint_embed_like_their_text(server) -> None:
    reply = httpx.post(f"{server.url}/tokenize", json={"model": MODEL, "content": FOOD, "add_special": True})
    assert reply.status_code == 200, reply.text
    tokens = reply.json()["tokens"]
    np.testing.assert_allclose(vectors(server, tokens), vectors(server, FOOD), atol=1e-5)
    detokenized = httpx.post(f"{server.url}/detokenize", json={"model": MODEL, "tokens": tokens}).json()
    assert detokenized["content"] == "[CLS] a man is eating food. [SEP]"


def test_dimensions_equal_to_the_native_size_is_accepted(server) -> None:
    assert vectors(server, FOOD, dimensions=384).shape == (1, 384)


def test_chat_and_embeddings_at_the_same_moment_both_succeed(client) -> None:
    def chat() -> str:
        messages = [{"role": "user", "content": "Say hello."}]
        reply = client.chat.completions.create(model=CHAT_MODEL, messages=messages, max_tokens=16)
        return reply.choices[0].finish_reason

    def embeddings() -> int:
        return len(client.embeddings.create(model=MODEL, input=[FOOD] * 64).data)

    with ThreadPoolExecutor(max_workers=4) as pool:
        chats = [pool.submit(chat) for _ in range(2)]
        embeds = [pool.submit(embeddings) for _ in range(2)]
        assert [f.result() for f in embeds] == [64, 64]
        assert all(f.result() in ("stop", "length") for f in chats)


# --- embedding errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ("", "input"),
        ([], "input"),
        (["fine", ""], "input[1]"),
        (["fine", 3], "input[1]"),
        (["fine", None], "input[1]"),
        ([[1, 2], []], "input[1]"),
        ([[1, 2], [3, "x"]], "input[1][1]"),
        ([101, -1], "input[1]"),
        ({"text": "hi"}, "input"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(server, value: object, param: str) -> None:
    assert_error(embed(server, input=value), 400, param)


def test_missing_input_is_refused(server) -> None:
    assert_error(httpx.post(f"{server.url}/v1/embeddings", json={"model": MODEL}), 400, "input")


def test_token_id_outside_the_vocabulary_is_refused(server) -> None:
    assert_error(embed(server, input=[[101, 10**6, 102]]), 400, "input")


def test_input_longer_than_the_window_is_refused(server) -> None:
    reply = embed(server, input=["short", "word " * 300])
    assert_error(reply, 400, "input[1]")
    assert "256 tokens" in reply.json()["error"]["message"]


def test_dimensions_other_than_native_are_refused(server) -> None:
    assert_error(embed(server, input=FOOD, dimensions=128), 400, "dimensions")


def test_unknown_encoding_format_is_refused(server) -> None:
    assert_error(embed(server, input=FOOD, encoding_format="int8"), 400, "encoding_format")


def test_chat_model_asked_for_embeddings_says_it_cannot(server) -> None:
    reply = httpx.post(f"{server.url}/v1/embeddings", json={"model": CHAT_MODEL, "input": FOOD}, timeout=60)
    assert_error(reply, 400, "model")
    message = reply.json()["error"]["message"]
    assert "is a chat model (it serves /v1/chat/completions)" in message
    assert "/v1/embeddings needs an embeddings model" in message


def test_unknown_model_is_404(server) -> None:
    reply = httpx.post(f"{server.url}/v1/embeddings", json={"model": "no-such-model", "input": FOOD})
    assert_error(reply, 404, "model")


# --- rerank -----------------------------------------------------------------------------------------

DOCUMENTS = [
    "Paris is the capital of France.",
    "Light travels through a vacuum at about 299,792 kilometres per second.",
    "Cats sleep for most of the day.",
]


def rerank(server: OneboxServer, path: str = "/v1/rerank", **body: object) -> httpx.Response:
    payload = {"model": MODEL, "query": "What is the speed of light?", "documents": DOCUMENTS, **body}
    return httpx.post(f"{server.url}{path}", json=payload, timeout=120)


def test_rerank_puts_the_right_document_first(server) -> None:
    reply = rerank(server).json()
    results = reply["results"]
    assert results[0] == {
        "index": 1,
        "relevance_score": results[0]["relevance_score"],
        "document": {"text": DOCUMENTS[1]},
    }
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert sorted(r["index"] for r in results) == [0, 1, 2]
    assert reply["model"] == MODEL
    assert reply["usage"]["total_tokens"] > 10


def test_rerank_top_n_and_return_documents(server) -> None:
    results = rerank(server, top_n=1, return_documents=False).json()["results"]
    assert [r["index"] for r in results] == [1]
    assert "document" not in results[0]


def test_rerank_is_also_served_without_the_v1_prefix(server) -> None:
    assert rerank(server, path="/rerank").json()["results"][0]["index"] == 1


def test_rerank_takes_documents_as_text_objects(server) -> None:
    reply = rerank(server, documents=[{"text": d} for d in DOCUMENTS])
    assert reply.json()["results"][0]["document"] == {"text": DOCUMENTS[1]}


@pytest.mark.parametrize(
    ("body", "param"),
    [({"query": ""}, "query"), ({"documents": []}, "documents"), ({"top_n": 0}, "top_n")],
)
def test_bad_rerank_request_is_refused_naming_the_parameter(server, body: dict, param: str) -> None:
    assert_error(rerank(server, **body), 400, param)


def test_chat_model_asked_to_rerank_says_it_cannot(server) -> None:
    assert_error(rerank(server, model=CHAT_MODEL), 400, "model")
