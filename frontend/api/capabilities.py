"""Which models can serve which endpoint, decided from the model's YAML before its worker starts.

Asking an embeddings model to chat used to start its worker (evicting another under
--max-active-backends) only for the worker to answer with an internal method name. The backend kind, with
`embeddings: true` and `options.cross_encoder`, says enough to refuse such a request at the edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from frontend.errors import InvalidRequest
from frontend.state import REGISTRY
from onebox_common.model_config import ModelConfig
from onebox_common.options import EmbeddingsOptions


def kind_of(config: ModelConfig) -> str:
    """What the model is, in a user's words."""
    if config.backend == "llama-cpp":
        return "an embeddings model" if config.embeddings else "a chat model"
    if config.backend == "embeddings":
        return "a reranker model" if is_cross_encoder(config) else "an embeddings model"
    return {
        "whisper": "a speech-to-text model",
        "tts": "a text-to-speech model",
        "diffusion": "an image model",
    }.get(config.backend, f"a {config.backend} model")


def home_of(config: ModelConfig) -> str:
    """The endpoint the model is for: where the user likely meant to send the request."""
    if config.backend == "embeddings":
        return "/v1/rerank" if is_cross_encoder(config) else "/v1/embeddings"
    return {
        "llama-cpp": "/v1/chat/completions",
        "whisper": "/v1/audio/transcriptions",
        "tts": "/v1/audio/speech",
        "diffusion": "/v1/images/generations",
    }.get(config.backend, "")


def is_cross_encoder(config: ModelConfig) -> bool:
    options = config.backend_options
    return isinstance(options, EmbeddingsOptions) and options.cross_encoder


def generates_text(c: ModelConfig) -> bool:
    # `embeddings: true` too: a llama.cpp context loaded for embeddings still samples (measured with
    # SmolLM2 135M, with and without mean pooling: it answered " Paris." as the plain model does)
    return c.backend == "llama-cpp"


def embeds(c: ModelConfig) -> bool:
    return (c.backend == "embeddings" and not is_cross_encoder(c)) or (
        c.backend == "llama-cpp" and c.embeddings
    )


def ranks(c: ModelConfig) -> bool:
    return c.backend == "embeddings" or (c.backend == "llama-cpp" and c.embeddings)


@dataclass(frozen=True)
class Capability:
    serves: Callable[[ModelConfig], bool]
    needs: str  # what the endpoint needs, in the error message


TEXT = Capability(generates_text, "a chat model (backend llama-cpp)")
EMBEDDINGS = Capability(
    embeds, "an embeddings model (backend embeddings, or llama-cpp with `embeddings: true`)"
)
RERANK = Capability(
    ranks, "a reranker or embeddings model (backend embeddings, or llama-cpp with `embeddings: true`)"
)
TOKENIZE = Capability(
    lambda c: c.backend in {"llama-cpp", "embeddings"},
    "a model with a tokenizer (backend llama-cpp or embeddings)",
)
TRANSCRIBE = Capability(lambda c: c.backend == "whisper", "a speech-to-text model (backend whisper)")
SPEAK = Capability(lambda c: c.backend == "tts", "a text-to-speech model (backend tts)")
IMAGES = Capability(lambda c: c.backend == "diffusion", "an image model (backend diffusion)")


def require(request: web.Request, model: str, capability: Capability) -> None:
    """Refuse a model that cannot serve this endpoint (404 for an unknown one), before its worker starts."""
    config = request.app[REGISTRY].get(model)
    if not capability.serves(config):
        raise InvalidRequest(
            f"model {model!r} is {kind_of(config)} (it serves {home_of(config)}); {request.path} needs "
            f"{capability.needs}",
            param="model",
            code="unsupported_by_model",
        )
