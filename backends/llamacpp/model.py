"""The llama-cpp backend: GGUF models through llama-cpp-python, one model per worker."""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import llama_cpp
import numpy as np
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import LlamaGrammar

from backends.embeddings.pooling import cosine_scores
from backends.errors import InvalidRequest
from backends.llamacpp import embedding
from backends.llamacpp.grammar_check import GrammarChecker
from backends.options import load_options
from backends.streaming import prefetched
from backends.text import StopMatcher, Utf8Stream
from onebox_common.options import LlamaCppOptions
from onebox_proto import backend_pb2 as pb

log = logging.getLogger("onebox.worker.llama-cpp")

LOCK_POLL_SECONDS = 0.05
# llama.cpp treats 0xFFFFFFFF as "pick a random seed", so a user's seed is folded below it.
SEED_MODULUS = 0xFFFFFFFF
GGML_LOG_WARN, GGML_LOG_ERROR = 3, 4  # enum ggml_log_level


@llama_cpp.llama_log_callback
def forward_ggml_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp's warnings and errors (why a file failed to load) into the worker's log."""
    if level in (GGML_LOG_WARN, GGML_LOG_ERROR):
        log.log(
            logging.ERROR if level == GGML_LOG_ERROR else logging.WARNING,
            "%s",
            text.decode(errors="replace").rstrip(),
        )


# Replaces llama-cpp-python's own callback, which drops everything below ERROR when not verbose and, worse,
# loads models with stderr sent to /dev/null, hiding the reason a load failed.
llama_cpp.llama_log_set(forward_ggml_log, ctypes.c_void_p(0))


class LlamaCppModel:
    def __init__(self, request: pb.LoadModelRequest) -> None:
        started = time.perf_counter()
        threads = request.threads or os.cpu_count() or 1
        options = load_options(LlamaCppOptions, request.options_json)
        self._grammar_checker = GrammarChecker(request.model_path)
        # verbose=True keeps stderr open during the load (see forward_ggml_log); its chatty Python
        # prints (metadata dumps, per-request cache notes) are discarded.
        with contextlib.redirect_stderr(io.StringIO()):
            self._llm = llama_cpp.Llama(
                model_path=request.model_path,
                n_ctx=request.context_size or 0,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=options.batch_size,
                embedding=request.embeddings,
                pooling_type=embedding.pooling_type(options.pooling),
                verbose=True,
            )
        self._llm.verbose = False
        self._threads = ThreadShare(request.threads_file, threads)
        self._embeddings = request.embeddings
        self._formatter = self._chat_formatter(request.chat_template, request.ignore_model_chat_template)
        # One llama context can decode one sequence at a time: requests queue on this lock.
        self._lock = threading.Lock()
        self._load_seconds = time.perf_counter() - started

    def describe(self) -> pb.LoadModelResponse:
        return pb.LoadModelResponse(
            has_chat_template=self._formatter is not None,
            context_size=self._llm.n_ctx(),
            load_seconds=self._load_seconds,
        )

    def _chat_formatter(self, override: str, ignore_model_template: bool) -> Jinja2ChatFormatter | None:
        own = "" if ignore_model_template else self._llm.metadata.get("tokenizer.chat_template", "")
        template = override or own
        if not template:
            return None
        model = self._llm._model
        return Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(model.token_eos()),
            bos_token=model.token_get_text(model.token_bos()),
        )

    # --- RPCs -------------------------------------------------------------------------------------

    def Generate(
        self, request: pb.GenerateRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GenerateResponse]:
        prompt_tokens, param = self._prompt_tokens(request)
        self._check_fits(prompt_tokens, param)
        grammar = self._grammar(request.grammar)
        with self._exclusive(context):
            replies = self._generate(request, prompt_tokens, context, grammar)
            yield from prefetched(replies, coalesce, request.message_interval_ms / 1000)

    def Tokenize(self, request: pb.TokenizeRequest, context: grpc.ServicerContext) -> pb.TokenizeResponse:
        tokens = self._llm.tokenize(request.text.encode(), add_bos=request.add_special, special=True)
        return pb.TokenizeResponse(tokens=tokens)

    def Detokenize(
        self, request: pb.DetokenizeRequest, context: grpc.ServicerContext
    ) -> pb.DetokenizeResponse:
        vocab = self._llm.n_vocab()
        if any(t < 0 or t >= vocab for t in request.tokens):
            raise InvalidRequest(f"token ids must be between 0 and {vocab - 1}", param="tokens")
        text = self._llm.detokenize(list(request.tokens)).decode("utf-8", errors="replace")
        return pb.DetokenizeResponse(text=text)

    def Embed(self, request: pb.EmbedRequest, context: grpc.ServicerContext) -> pb.EmbedResponse:
        self._require_embeddings()
        sequences = embedding.embed_inputs(self._llm, request)
        with self._exclusive(context):
            vectors = embedding.embed_sequences(self._llm, sequences)
        return pb.EmbedResponse(
            embeddings=[pb.Embedding(values=v) for v in vectors.tolist()],
            prompt_tokens=sum(map(len, sequences)),
        )

    def Rerank(self, request: pb.RerankRequest, context: grpc.ServicerContext) -> pb.RerankResponse:
        self._require_embeddings()
        sequences = embedding.rerank_inputs(self._llm, request)
        with self._exclusive(context):
            vectors = embedding.embed_sequences(self._llm, sequences)
        return pb.RerankResponse(
            scores=cosine_scores(vectors[0], vectors[1:]).tolist(), prompt_tokens=sum(map(len, sequences))
        )

    def _require_embeddings(self) -> None:
        if not self._embeddings:
            raise InvalidRequest(
                "this model is loaded for text generation and cannot make embeddings; use an embeddings "
                "model, or set `embeddings: true` in this model's YAML",
                param="model",
            )

    # --- generation -------------------------------------------------------------------------------

    def _prompt_tokens(self, request: pb.GenerateRequest) -> tuple[list[int], str]:
        if request.WhichOneof("input") == "chat":
            return self._llm.tokenize(
                self._render_chat(request.chat).encode(), add_bos=False, special=True
            ), "messages"
        # A raw completion prompt is text from the user: special-token text in it stays plain text.
        return self._llm.tokenize(request.prompt.encode(), add_bos=True, special=False), "prompt"

    def _render_chat(self, chat: pb.ChatConversation) -> str:
        if self._formatter is None:
            raise InvalidRequest(
                "this model has no chat template (none in its weights or its YAML), so it cannot serve chat; "
                "use /v1/completions, or set `template.chat` in the model's YAML",
                param="model",
            )
        messages = [chat_message_dict(m) for m in chat.messages]
        tools = json.loads(chat.tools_json) if chat.tools_json else None
        if tools and "tools" not in self._formatter.template:
            messages = with_tool_instructions(messages, tools)
        try:
            return self._formatter(messages=messages, tools=tools).prompt
        except Exception as error:  # the template itself rejects the conversation (raise_exception)
            raise InvalidRequest(
                f"the chat template cannot render these messages: {error}", "messages"
            ) from error

    def _grammar(self, gbnf: str) -> LlamaGrammar | None:
        """Compile the grammar first in the helper process (grammar_check.py): llama.cpp's parser can crash
        on a grammar, and a crash here would cut every request on this model."""
        if not gbnf:
            return None
        self._grammar_checker.check(gbnf)
        return LlamaGrammar.from_string(gbnf, verbose=False)

    def _check_fits(self, tokens: list[int], param: str) -> None:
        n_ctx = self._llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise InvalidRequest(
                f"the prompt is {len(tokens)} tokens long, but this model's context holds {n_ctx} tokens "
                "(prompt and completion together); shorten the prompt",
                param=param,
            )

    @contextmanager
    def _exclusive(self, context: grpc.ServicerContext) -> Iterator[None]:
        """Wait for the model, giving up if the client goes away while queued."""
        while not self._lock.acquire(timeout=LOCK_POLL_SECONDS):
            if not context.is_active():
                raise InvalidRequest("cancelled while queued")
        try:
            yield
        finally:
            self._lock.release()

    def _generate(
        self,
        request: pb.GenerateRequest,
        prompt: list[int],
        context: grpc.ServicerContext,
        grammar: LlamaGrammar | None = None,
    ) -> Iterator[pb.GenerateResponse]:
        room = self._llm.n_ctx() - len(prompt)
        limit = min(request.max_tokens, room) if request.max_tokens else room
        stops = StopMatcher(list(request.stop))
        utf8 = Utf8Stream()
        vocab = self._llm._model.vocab
        produced = pending = 0
        logprobs: list[pb.TokenLogprob] = []
        finish = pb.FINISH_REASON_LENGTH
        self._llm.set_seed(
            request.sampling.seed % SEED_MODULUS
            if request.sampling.HasField("seed")
            else random.randrange(SEED_MODULUS)
        )
        self._threads.apply(self._llm)
        # Forget the previous sequence, so that every prompt is decoded whole, in the same batches. Reusing
        # the cached prefix decodes only the new tail (a repeated prompt: its last token alone), which
        # changes the float arithmetic enough to flip a near tie: temperature 0 gave different text for the
        # same request sent twice. The cost is re-decoding the shared prefix of a follow-up chat turn.
        self._llm.reset()
        for token in self._llm.generate(prompt, grammar=grammar, **sampling_kwargs(request.sampling)):
            self._threads.apply(self._llm)
            if llama_cpp.llama_vocab_is_eog(vocab, token) and not request.ignore_eos:
                finish = pb.FINISH_REASON_STOP
                break
            produced += 1
            pending += 1
            piece = self._llm.detokenize([token], special=False)
            if request.logprobs:
                logprobs.append(token_logprob(self._llm, token, piece, max(request.logprobs, 0)))
            text = stops.feed(utf8.feed(piece))
            if stops.stopped:
                finish = pb.FINISH_REASON_STOP
            if text or stops.stopped:
                yield pb.GenerateResponse(text=text, tokens=pending, logprobs=logprobs)
                pending, logprobs = 0, []
            if stops.stopped or produced >= limit or not context.is_active():
                break
        tail = stops.feed(utf8.flush()) + stops.flush()
        yield pb.GenerateResponse(
            text=tail,
            tokens=pending,
            logprobs=logprobs,
            finish_reason=finish,
            prompt_tokens=len(prompt),
            completion_tokens=produced,
        )


def token_logprob(llm: llama_cpp.Llama, token: int, piece: bytes, top: int) -> pb.TokenLogprob:
    """The sampled token's log-probability, and the `top` likeliest alternatives', from the logits that
    produced it: while llama-cpp-python's generator is suspended on a token, the context still holds the
    logits of the position that token was sampled from."""
    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)
    logits -= logits.max()
    logprobs = logits - np.log(np.exp(logits).sum())
    entry = pb.TokenLogprob(token=piece.decode(errors="replace"), logprob=float(logprobs[token]), bytes=piece)
    if top:
        best = np.argpartition(-logprobs, top)[:top]
        for alt in best[np.argsort(-logprobs[best])]:
            alt_piece = llm.detokenize([int(alt)], special=False)
            entry.top.append(
                pb.TokenLogprob(
                    token=alt_piece.decode(errors="replace"), logprob=float(logprobs[alt]), bytes=alt_piece
                )
            )
    return entry


class ThreadShare:
    """Follows the CPU share the frontend gives this worker (see frontend/workers/cpu_share.py)."""

    def __init__(self, path: str, threads: int) -> None:
        self._fd = os.open(path, os.O_RDONLY) if path and os.path.exists(path) else None
        self._current = threads

    def apply(self, llm: llama_cpp.Llama) -> None:
        if self._fd is None:
            return
        raw = os.pread(self._fd, 8, 0)
        wanted = int(raw) if raw.isdigit() else self._current
        if wanted != self._current and wanted > 0:
            llama_cpp.llama_set_n_threads(llm.ctx, wanted, wanted)
            self._current = wanted


def with_tool_instructions(messages: list[dict[str, Any]], tools: list) -> list[dict[str, Any]]:
    """For templates that ignore `tools`: declare them in the system message, in the Hermes format
    that frontend/api/text/tools.py reads back."""
    note = (
        "You may call these functions:\n<tools>\n" + "\n".join(json.dumps(t) for t in tools) + "\n</tools>\n"
        'To call one, answer only with <tool_call>{"name": NAME, "arguments": {...}}</tool_call>'
    )
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{note}"}, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def coalesce(replies: list[pb.GenerateResponse]) -> pb.GenerateResponse:
    """Several generation messages as one: text joined, tokens added, the last one's totals kept."""
    if len(replies) == 1:
        return replies[0]
    merged = pb.GenerateResponse()
    for reply in replies:
        merged.MergeFrom(reply)  # repeated logprobs concatenate; finish and totals come from the last
    merged.text = "".join(r.text for r in replies)
    merged.tokens = sum(r.tokens for r in replies)
    return merged


def chat_message_dict(message: pb.ChatMessage) -> dict[str, Any]:
    """A message as chat templates expect it (the shape transformers passes to them)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.tool_calls_json:
        out["tool_calls"] = json.loads(message.tool_calls_json)
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out


def sampling_kwargs(params: pb.SamplingParams) -> dict[str, Any]:
    return {
        # every field is set by the frontend (backend.proto, SamplingParams)
        "temp": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "min_p": params.min_p,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "repeat_penalty": params.repeat_penalty,
    }
