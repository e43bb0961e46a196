"""What chat and completions requests share: sampling fields, their limits, and the worker's Generation."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from frontend.api.limits import LimitExceeded, config_of
from frontend.api.parsing import ModelName
from frontend.api.text.structured import ResponseFormat, grammar_for
from frontend.errors import InvalidRequest
from frontend.workers.messages import Generation, Sampling
from onebox_common.model_config import ModelConfig

# llama.cpp's own defaults, used where neither the request nor the model's YAML says otherwise.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95
DEFAULT_TOP_K = 40
DEFAULT_MIN_P = 0.05
MAX_STOP_SEQUENCES = 16
MAX_TOKENS_LIMIT = 2**31 - 1
MAX_TOP_K = 2**31 - 1  # the wire type is int32; no vocabulary comes near it
WHOLE_REPLY_INTERVAL_MS = 250


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class TextRequest(BaseModel):
    """The fields /v1/chat/completions and /v1/completions have in common.

    Every limit is checked here, while the body is parsed: a bad request never cold-starts a model.
    """

    # Unknown fields are ignored, as OpenAI-compatible servers do: clients send extras (metadata, store...).
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0, le=MAX_TOP_K)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)
    stop: str | list[str] | None = Field(None)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # Extension (llama-server, LocalAI): generate exactly max_tokens, past end-of-text.
    ignore_eos: bool = False
    response_format: ResponseFormat | None = None
    # Extension (llama-server, LocalAI): a GBNF grammar the output must match.
    grammar: str | None = None
    _grammar: str = PrivateAttr("")

    @field_validator("stop")
    @classmethod
    def at_most_16_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        # InvalidRequest, not ValueError: pydantic lets it through, and the 400 names `stop` itself.
        if isinstance(stop, list) and len(stop) > MAX_STOP_SEQUENCES:
            raise InvalidRequest(f"at most {MAX_STOP_SEQUENCES} stop sequences are accepted", param="stop")
        return stop

    @model_validator(mode="after")
    def choices_within_limit(self, info: ValidationInfo) -> TextRequest:
        # each choice is a generation the worker runs: 400 prompts x n 16 started 6,400 of them
        limit = config_of(info).max_choices_per_request
        if limit and (choices := self.choice_count()) > limit:
            raise LimitExceeded(
                f"this request asks for {choices} choices (prompts x n); this server makes at most {limit} "
                "per request (--max-choices-per-request)",
                limit="max_choices_per_request",
                param="n",
            )
        return self

    def choice_count(self) -> int:
        return self.n

    @model_validator(mode="after")
    def build_grammar(self) -> TextRequest:
        # Raises InvalidRequest (not a ValueError) so that the 400 names the schema's own location.
        self._grammar = grammar_for(self.response_format, self.grammar)
        return self

    def limit(self) -> int | None:
        return self.max_tokens

    def logprob_count(self) -> int:
        """Alternatives per token the worker reports: -1 only the sampled token, 0 no log-probabilities."""
        return 0

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def stop_sequences(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(s for s in stops if s)

    def sampling(self, config: ModelConfig, choice: int = 0) -> Sampling:
        """Request values, else the model's YAML defaults, else llama.cpp's."""
        d = config.parameters
        return Sampling(
            temperature=first(self.temperature, d.temperature, DEFAULT_TEMPERATURE),
            top_p=first(self.top_p, d.top_p, DEFAULT_TOP_P),
            top_k=first(self.top_k, d.top_k, DEFAULT_TOP_K),
            min_p=first(self.min_p, d.min_p, DEFAULT_MIN_P),
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            repeat_penalty=first(self.repeat_penalty, d.repeat_penalty, 1.0),
            # n choices from one seed must differ from each other, and repeat run after run.
            seed=None if self.seed is None else self.seed + choice,
        )

    def generation(
        self, config: ModelConfig, prompt: object, choice: int, stream_interval_ms: int = 0, **extra: object
    ) -> Generation:
        return Generation(
            prompt=prompt,  # type: ignore[arg-type]
            sampling=self.sampling(config, choice),
            max_tokens=first(self.limit(), config.parameters.max_tokens, None),
            stop=self.stop_sequences(),
            ignore_eos=self.ignore_eos,
            grammar=self._grammar,
            logprobs=self.logprob_count(),
            # Every message costs CPU at each hop, which the model's busy cores feel twice over; a reply
            # sent whole needs no token-by-token messages, only enough to show the watchdog progress.
            message_interval_ms=stream_interval_ms if self.stream else WHOLE_REPLY_INTERVAL_MS,
            **extra,  # type: ignore[arg-type]
        )


def first(*values):  # type: ignore[no-untyped-def]
    return next((v for v in values if v is not None), None)
