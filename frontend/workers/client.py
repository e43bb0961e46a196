"""The frontend's side of the gRPC contract: the only module that touches generated *_pb2 code.

It converts the frontend's plain request types into protobuf messages, and every gRPC failure into an
APIError or, when the worker went away, a WorkerGone, in one place (`_translated`). WorkerGone never
reaches a handler: the Worker that owns this client turns it into a WorkerFailed that names the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import numpy as np

from frontend.errors import APIError, InvalidRequest, ServiceUnavailable, WorkerFailed
from frontend.workers.messages import (
    Delta,
    Embeddings,
    Generation,
    ImageGeneration,
    LoadInfo,
    Message,
    Ranking,
    Segment,
    Speech,
    TokenLogprob,
    Transcription,
    TranscriptionJob,
    Word,
)
from onebox_common.model_config import ModelConfig
from onebox_common.wire import MAX_MESSAGE_BYTES, PARAM_METADATA_KEY
from onebox_proto import backend_pb2 as pb
from onebox_proto import backend_pb2_grpc as pb_grpc


class WorkerGone(Exception):
    """The worker stopped answering: it died, or its connection was closed. The Worker adds the cause."""


CHANNEL_CLOSED = "its connection was closed"


_FINISH = {pb.FINISH_REASON_STOP: "stop", pb.FINISH_REASON_LENGTH: "length"}


class BackendClient:
    def __init__(self, address: str, model: str) -> None:
        self.model = model
        self._channel = grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                # The first health check usually comes before the worker's socket exists; gRPC's default
                # reconnect backoff (1 s) would then add most of a second to every cold start.
                ("grpc.initial_reconnect_backoff_ms", 20),
                ("grpc.min_reconnect_backoff_ms", 20),
                ("grpc.max_reconnect_backoff_ms", 200),
            ],
        )
        self._stub = pb_grpc.BackendStub(self._channel)
        self._closed = False

    async def close(self) -> None:
        """Close the connection; calls in progress end with WorkerGone (see `_translated`)."""
        self._closed = True
        await self._channel.close(grace=None)

    @contextlib.asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        """Every gRPC failure of a call made inside, as an APIError, or WorkerGone when the worker is gone.

        Closing the channel cancels its calls locally, which gRPC reports as asyncio.CancelledError in the
        caller's task. That is the worker going away, not the request being cancelled: only a task that
        is itself being cancelled (the client went away) still sees CancelledError.
        """
        try:
            yield
        except grpc.aio.AioRpcError as error:
            raise rpc_error_to_api_error(error, self.model) from None
        except grpc.aio.UsageError:  # a call on a channel closed before it began
            raise WorkerGone(CHANNEL_CLOSED) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._closed or (task is not None and task.cancelling()):
                raise
            raise WorkerGone(CHANNEL_CLOSED) from None

    async def healthy(self, timeout: float) -> bool:
        try:
            await self._stub.Health(pb.HealthRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return True

    async def load(self, config: ModelConfig, threads: int, threads_file: str, timeout: float) -> LoadInfo:
        request = pb.LoadModelRequest(
            model=config.name,
            backend=config.backend,
            model_path=str(config.path),
            context_size=config.context_size,
            threads=threads,
            chat_template=config.template.chat or "",
            embeddings=config.embeddings,
            options_json=json.dumps(config.options),
            ignore_model_chat_template=not config.template.use_model_template,
            threads_file=threads_file,
        )
        async with self._translated():
            reply = await self._stub.LoadModel(request, timeout=timeout)
        return LoadInfo(reply.has_chat_template, reply.context_size, reply.load_seconds)

    async def generate(self, generation: Generation) -> AsyncIterator[Delta]:
        call = None
        try:
            async with self._translated():
                call = self._stub.Generate(generation_request(generation))
                async for reply in call:
                    yield Delta(
                        text=reply.text,
                        tokens=reply.tokens,
                        finish_reason=_FINISH.get(reply.finish_reason),
                        prompt_tokens=reply.prompt_tokens,
                        completion_tokens=reply.completion_tokens,
                        logprobs=[token_logprob(lp) for lp in reply.logprobs],
                    )
        finally:
            # A consumer that stops early (client disconnected) must stop the worker's generation too.
            if call is not None:
                call.cancel()

    async def embed(self, inputs: list[str] | list[list[int]], truncate: bool) -> Embeddings:
        """Texts, or token-id sequences, to vectors; `truncate` cuts inputs longer than the model's window."""
        request = pb.EmbedRequest(truncate=truncate)
        if inputs and isinstance(inputs[0], str):
            request.texts.extend(inputs)
        else:
            request.token_inputs.extend(pb.TokenIds(ids=ids) for ids in inputs)
        async with self._translated():
            reply = await self._stub.Embed(request)
        vectors = np.array([e.values for e in reply.embeddings], dtype=np.float32)
        return Embeddings(vectors, reply.prompt_tokens)

    async def rerank(self, query: str, documents: list[str]) -> Ranking:
        async with self._translated():
            reply = await self._stub.Rerank(pb.RerankRequest(query=query, documents=documents))
        return Ranking(list(reply.scores), reply.prompt_tokens)

    async def tokenize(self, text: str, add_special: bool) -> list[int]:
        async with self._translated():
            reply = await self._stub.Tokenize(pb.TokenizeRequest(text=text, add_special=add_special))
        return list(reply.tokens)

    async def detokenize(self, tokens: list[int]) -> str:
        async with self._translated():
            reply = await self._stub.Detokenize(pb.DetokenizeRequest(tokens=tokens))
        return reply.text

    async def transcribe(self, job: TranscriptionJob) -> Transcription:
        request = pb.TranscribeRequest(
            audio_path=job.audio_path,
            task=pb.TRANSCRIBE_TASK_TRANSLATE if job.translate else pb.TRANSCRIBE_TASK_TRANSCRIBE,
            language=job.language,
            prompt=job.prompt,
            temperature=job.temperature,
            word_timestamps=job.words,
            max_seconds=job.max_seconds,
        )
        async with self._translated():
            reply = await self._stub.Transcribe(request)
        segments = tuple(segment(s) for s in reply.segments)
        return Transcription(reply.text, reply.language, reply.duration, segments)

    async def synthesize(self, text: str, voice: str, speed: float, audio_format: str) -> Speech:
        request = pb.SynthesizeRequest(text=text, voice=voice, speed=speed, format=audio_format)
        async with self._translated():
            reply = await self._stub.Synthesize(request)
        return Speech(reply.audio, reply.content_type)

    async def generate_image(self, generation: ImageGeneration) -> list[bytes]:
        """PNG files, `generation.n` of them."""
        g = generation
        request = pb.GenerateImageRequest(
            prompt=g.prompt, negative_prompt=g.negative_prompt, width=g.width, height=g.height,
            steps=g.steps or 0, n=g.n,
        )  # fmt: skip
        if g.seed is not None:
            request.seed = g.seed % 2**64  # as for text: any integer seed, on an unsigned wire type
        if g.guidance_scale is not None:
            request.guidance_scale = g.guidance_scale
        async with self._translated():
            reply = await self._stub.GenerateImage(request)
        return list(reply.images)


def generation_request(generation: Generation) -> pb.GenerateRequest:
    s = generation.sampling
    sampling = pb.SamplingParams(
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        min_p=s.min_p,
        presence_penalty=s.presence_penalty,
        frequency_penalty=s.frequency_penalty,
        repeat_penalty=s.repeat_penalty,
    )
    if s.seed is not None:
        sampling.seed = s.seed % 2**64  # OpenAI seeds are any integer; the wire type is unsigned
    request = pb.GenerateRequest(
        sampling=sampling,
        max_tokens=generation.max_tokens or 0,
        stop=list(generation.stop),
        ignore_eos=generation.ignore_eos,
        message_interval_ms=generation.message_interval_ms,
        grammar=generation.grammar,
        logprobs=generation.logprobs,
    )
    if isinstance(generation.prompt, str):
        request.prompt = generation.prompt
    else:
        request.chat.CopyFrom(
            pb.ChatConversation(
                messages=[chat_message(m) for m in generation.prompt],
                tools_json=json.dumps(generation.tools) if generation.tools else "",
            )
        )
    return request


def token_logprob(entry: pb.TokenLogprob) -> TokenLogprob:
    return TokenLogprob(
        entry.token,
        entry.logprob,
        entry.bytes,
        tuple(TokenLogprob(t.token, t.logprob, t.bytes) for t in entry.top),
    )


def segment(entry: pb.Segment) -> Segment:
    return Segment(
        id=entry.id,
        start=entry.start,
        end=entry.end,
        text=entry.text,
        words=tuple(Word(w.start, w.end, w.word, w.probability) for w in entry.words),
        avg_logprob=entry.avg_logprob,
        no_speech_prob=entry.no_speech_prob,
        tokens=tuple(entry.tokens),
        temperature=entry.temperature,
        compression_ratio=entry.compression_ratio,
    )


def chat_message(message: Message) -> pb.ChatMessage:
    return pb.ChatMessage(
        role=message.role,
        content=message.content,
        name=message.name or "",
        tool_calls_json=json.dumps(message.tool_calls) if message.tool_calls else "",
        tool_call_id=message.tool_call_id or "",
    )


def rpc_error_to_api_error(error: grpc.aio.AioRpcError, model: str) -> APIError | WorkerGone:
    """The one mapping from a worker's gRPC status to what the HTTP client sees."""
    code, detail = error.code(), error.details() or ""
    param = dict(error.trailing_metadata() or ()).get(PARAM_METADATA_KEY)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequest(detail, param=param)
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return InvalidRequest(detail, param="model", code="unsupported_by_model")
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ServiceUnavailable(f"model {model!r}: {detail}", code="out_of_memory")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return WorkerGone(detail)
    return WorkerFailed(detail)
