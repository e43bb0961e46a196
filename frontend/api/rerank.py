"""POST /v1/rerank (also /rerank): the Jina/Cohere shape that LocalAI, vLLM and llama-server accept.

    {model, query, documents, top_n?, return_documents?}
    -> {id, model, usage, results: [{index, document: {text}, relevance_score}]}, best first

The worker scores each document against the query: a reranker model with its own scores, an embeddings
model with the cosine of the two vectors (-1 to 1). A document longer than the model's window is judged by
its start.
"""

from __future__ import annotations

import secrets

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from frontend.api.capabilities import RERANK, require
from frontend.api.limits import check_chars, config_of
from frontend.api.parsing import ModelName, parse_body
from frontend.state import MANAGER
from frontend.workers.messages import Ranking

routes = web.RouteTableDef()

MAX_DOCUMENTS = 1000


class Document(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    query: str = Field(min_length=1)
    # Cohere also takes documents as {"text": ...} objects
    documents: list[str | Document] = Field(min_length=1, max_length=MAX_DOCUMENTS)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = True

    @model_validator(mode="after")
    def texts_within_limit(self, info: ValidationInfo) -> RerankRequest:
        total = len(self.query) + sum(len(text) for text in self.texts())
        check_chars(total, config_of(info).max_input_chars, "documents")
        return self

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


def response(body: RerankRequest, texts: list[str], ranking: Ranking) -> dict:
    order = sorted(range(len(texts)), key=lambda i: -ranking.scores[i])[: body.top_n]
    results = []
    for i in order:
        result: dict = {"index": i, "relevance_score": ranking.scores[i]}
        if body.return_documents:
            result["document"] = {"text": texts[i]}
        results.append(result)
    tokens = ranking.prompt_tokens
    return {
        "id": f"rerank-{secrets.token_hex(12)}",
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "results": results,
    }


@routes.post("/v1/rerank")
@routes.post("/rerank")
async def rerank(request: web.Request) -> web.Response:
    body = await parse_body(request, RerankRequest)
    require(request, body.model, RERANK)
    texts = body.texts()
    async with request.app[MANAGER].use(body.model) as worker:
        ranking = await worker.rerank(body.query, texts)
    return web.json_response(response(body, texts, ranking))
