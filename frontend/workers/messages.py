"""The plain request and result types the front end hands the workers and gets back: what the gRPC client
(client.py) converts to and from protobuf, so that nothing else needs the generated code."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    name: str | None = None
    tool_calls: list | None = None
    tool_call_id: str | None = None


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class Generation:
    """One text generation: a raw prompt or a chat conversation, and how to sample it."""

    prompt: str | list[Message]
    sampling: Sampling
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    tools: list | None = None
    ignore_eos: bool = False
    message_interval_ms: int = 0
    grammar: str = ""  # GBNF; "" for unconstrained
    logprobs: int = 0  # alternatives per token; -1: only the sampled token's; 0: none


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: bytes
    top: tuple[TokenLogprob, ...] = ()


@dataclass
class Delta:
    text: str
    tokens: int
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass(frozen=True)
class LoadInfo:
    has_chat_template: bool
    context_size: int
    load_seconds: float


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray  # float32, one row per input, in input order
    prompt_tokens: int


@dataclass(frozen=True)
class Ranking:
    scores: list[float]  # one per document, in document order
    prompt_tokens: int


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    avg_logprob: float
    no_speech_prob: float
    tokens: tuple[int, ...]
    temperature: float
    compression_ratio: float


@dataclass(frozen=True)
class Transcription:
    text: str
    language: str  # ISO-639-1, detected or as asked
    duration: float  # seconds of audio
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Speech:
    audio: bytes
    content_type: str


@dataclass(frozen=True)
class TranscriptionJob:
    """Speech in a file of the frontend's upload folder, to text (to English text when `translate`)."""

    audio_path: str
    translate: bool = False
    language: str = ""  # "": detect
    prompt: str = ""
    temperature: float = 0.0
    words: bool = False  # word timestamps
    max_seconds: float = 1800.0


@dataclass(frozen=True)
class ImageGeneration:
    prompt: str
    width: int
    height: int
    n: int = 1
    negative_prompt: str = ""
    steps: int | None = None  # None: the model's default
    seed: int | None = None  # None: a random image
    guidance_scale: float | None = None
