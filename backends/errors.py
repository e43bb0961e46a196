"""Exceptions a backend raises; the runner turns each into one gRPC status code (backends/runner.py)."""

from __future__ import annotations

import grpc


class WorkerError(Exception):
    """Base of the errors a worker reports to the frontend on purpose."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The OpenAI request field at fault, when the worker is the one that can tell (e.g. a prompt
        # that does not fit the context is the fault of `messages`).
        self.param = param


class InvalidRequest(WorkerError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotLoaded(WorkerError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unsupported(WorkerError):
    code = grpc.StatusCode.UNIMPLEMENTED


class LoadFailed(WorkerError):
    """The model could not be loaded (a bad file, a wrong format): expected, so no traceback."""


class OutOfMemory(WorkerError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
