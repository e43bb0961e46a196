"""The shared worker runner: one process, one model, one gRPC server.

Everything a backend kind does not care about lives here: the address, signals, graceful stop, health,
exiting when the parent dies, and the one place where exceptions become gRPC status codes.

    python -m backends.runner --model NAME --backend llama-cpp --address unix:///run/x.sock --parent-pid N
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from backends.errors import LoadFailed, NotLoaded, OutOfMemory, Unsupported, WorkerError
from onebox_common.wire import MAX_MESSAGE_BYTES, PARAM_METADATA_KEY
from onebox_proto import backend_pb2 as pb
from onebox_proto import backend_pb2_grpc as pb_grpc

log = logging.getLogger("onebox.worker")

# backend kind (as written in a model YAML) -> "module:class" of its model implementation
BACKENDS: dict[str, str] = {
    "llama-cpp": "backends.llamacpp.model:LlamaCppModel",
    "embeddings": "backends.embeddings.model:EmbeddingsModel",
    "whisper": "backends.whisper.model:WhisperModel",
    "tts": "backends.tts.model:PiperModel",
    "diffusion": "backends.diffusion.model:DiffusionModel",
}

PARENT_POLL_SECONDS = 1.0


class Model(Protocol):
    """What a backend kind implements: a constructor that loads, and any of the data-plane RPCs."""

    def describe(self) -> pb.LoadModelResponse: ...


def load_backend_class(kind: str) -> type:
    try:
        module_name, class_name = BACKENDS[kind].split(":")
    except KeyError:
        raise Unsupported(f"unknown backend kind {kind!r}; known: {', '.join(sorted(BACKENDS))}") from None
    return getattr(importlib.import_module(module_name), class_name)


class Servicer(pb_grpc.BackendServicer):
    """Health and LoadModel are common; every other RPC is forwarded to the loaded model."""

    def __init__(self, model_name: str) -> None:
        self._model_name = model_name
        self._model: Any = None
        self._load_lock = threading.Lock()

    def Health(self, request: pb.HealthRequest, context: grpc.ServicerContext) -> pb.HealthResponse:
        return pb.HealthResponse(model=self._model_name, loaded=self._model is not None)

    def LoadModel(self, request: pb.LoadModelRequest, context: grpc.ServicerContext) -> pb.LoadModelResponse:
        with self._load_lock:
            if self._model is None:
                self._model = self._load(request)
            return self._model.describe()

    def _load(self, request: pb.LoadModelRequest) -> Any:
        backend = load_backend_class(request.backend)
        try:
            return backend(request)
        except (WorkerError, MemoryError):
            raise
        except Exception as error:
            log.error("loading %s failed: %s: %s", request.model_path, type(error).__name__, error)
            raise LoadFailed(f"{type(error).__name__}: {error}") from error

    def forward(self, rpc_name: str, request: Any, context: grpc.ServicerContext) -> Any:
        if self._model is None:
            raise NotLoaded("no model is loaded in this worker")
        method = getattr(self._model, rpc_name, None)
        if method is None:
            raise Unsupported(f"model {self._model_name!r} does not support {rpc_name}")
        return method(request, context)


@dataclass(frozen=True)
class RpcStatus:
    code: grpc.StatusCode
    details: str
    param: str | None = None  # sent as the PARAM_METADATA_KEY trailing metadata


def rpc_status(error: BaseException) -> RpcStatus:
    """The one mapping from a worker exception to a gRPC status."""
    if isinstance(error, WorkerError):
        return RpcStatus(error.code, error.message, error.param)
    if isinstance(error, MemoryError):
        return RpcStatus(OutOfMemory.code, "the worker ran out of memory")
    return RpcStatus(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")


def abort_with(context: grpc.ServicerContext, error: BaseException) -> None:
    """End the RPC with the error's status (context.abort raises); a surprise is logged with its traceback."""
    status = rpc_status(error)
    if not isinstance(error, WorkerError | MemoryError):
        log.exception("unexpected error in worker", exc_info=error)
    if status.param:
        context.set_trailing_metadata(((PARAM_METADATA_KEY, status.param),))
    context.abort(status.code, status.details)


def guard_unary(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(request, context)
        except Exception as error:
            abort_with(context, error)

    return guarded


def guard_stream(method: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    @functools.wraps(method)
    def guarded(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from method(request, context)
        except Exception as error:
            abort_with(context, error)

    return guarded


def guarded_servicer(servicer: Servicer) -> Servicer:
    """Wrap every RPC of the service so exceptions leave the worker as status codes, never tracebacks."""
    common = {"Health", "LoadModel"}
    for method in pb.DESCRIPTOR.services_by_name["Backend"].methods:
        name = method.name
        target = getattr(servicer, name) if name in common else functools.partial(servicer.forward, name)
        guard = guard_stream if method.server_streaming else guard_unary
        setattr(servicer, name, guard(target))
    return servicer


def create_server(address: str, servicer: Servicer, max_workers: int = 32) -> tuple[grpc.Server, int]:
    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options)
    pb_grpc.add_BackendServicer_to_server(guarded_servicer(servicer), server)
    port = server.add_insecure_port(address)
    return server, port


def watch_parent(parent_pid: int, stop: threading.Event) -> None:
    """Exit when the frontend that started us is gone, so a killed server leaves no orphans."""
    while not stop.wait(PARENT_POLL_SECONDS):
        if os.getppid() != parent_pid:
            log.warning("parent process %d is gone; stopping", parent_pid)
            stop.set()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="onebox-worker")
    parser.add_argument("--model", required=True, help="model name (shown in ps)")
    parser.add_argument("--backend", required=True, choices=sorted(BACKENDS))
    parser.add_argument("--address", required=True, help="unix:///path.sock or host:port")
    parser.add_argument("--parent-pid", type=int, default=os.getppid())
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server, _ = create_server(args.address, Servicer(args.model))
    server.start()
    log.info("worker for %s (%s) listening on %s", args.model, args.backend, args.address)
    threading.Thread(target=watch_parent, args=(args.parent_pid, stop), daemon=True).start()
    stop.wait()
    server.stop(grace=2).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
