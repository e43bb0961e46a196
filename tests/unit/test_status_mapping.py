"""The two ends of the gRPC status contract: backends/runner.py turns a worker's exception into a status,
frontend/workers/client.py turns a status into the APIError a client sees."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from backends import errors as worker_errors
from backends.runner import RpcStatus, abort_with, rpc_status
from frontend.errors import APIError, InvalidRequest, ServiceUnavailable, WorkerFailed
from frontend.workers.client import WorkerGone, rpc_error_to_api_error
from onebox_common.wire import PARAM_METADATA_KEY

# --- the worker's side: exception -> status ---------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (worker_errors.InvalidRequest("too long", param="messages"),
         RpcStatus(grpc.StatusCode.INVALID_ARGUMENT, "too long", "messages")),
        (worker_errors.InvalidRequest("bad GBNF"), RpcStatus(grpc.StatusCode.INVALID_ARGUMENT, "bad GBNF")),
        (worker_errors.NotLoaded("no model"), RpcStatus(grpc.StatusCode.FAILED_PRECONDITION, "no model")),
        (worker_errors.Unsupported("no Embed"), RpcStatus(grpc.StatusCode.UNIMPLEMENTED, "no Embed")),
        (worker_errors.LoadFailed("not a GGUF"), RpcStatus(grpc.StatusCode.INTERNAL, "not a GGUF")),
        (worker_errors.OutOfMemory("CUDA OOM"), RpcStatus(grpc.StatusCode.RESOURCE_EXHAUSTED, "CUDA OOM")),
        (worker_errors.WorkerError("plain"), RpcStatus(grpc.StatusCode.INTERNAL, "plain")),
        (MemoryError(), RpcStatus(grpc.StatusCode.RESOURCE_EXHAUSTED, "the worker ran out of memory")),
        (ValueError("boom"), RpcStatus(grpc.StatusCode.INTERNAL, "ValueError: boom")),
    ],
)  # fmt: skip
def test_worker_exception_becomes_one_status(error: BaseException, status: RpcStatus) -> None:
    assert rpc_status(error) == status


class Aborted(Exception):
    pass


class RecordingContext:
    """The two ServicerContext methods abort_with uses."""

    def __init__(self) -> None:
        self.trailing: tuple = ()
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def set_trailing_metadata(self, metadata: tuple) -> None:
        self.trailing = metadata

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted


def test_abort_names_the_param_in_trailing_metadata() -> None:
    context = RecordingContext()
    with pytest.raises(Aborted):
        abort_with(context, worker_errors.InvalidRequest("too long", param="messages"))  # type: ignore[arg-type]
    assert context.aborted == (grpc.StatusCode.INVALID_ARGUMENT, "too long")
    assert context.trailing == ((PARAM_METADATA_KEY, "messages"),)


def test_abort_without_a_param_sends_no_metadata() -> None:
    context = RecordingContext()
    with pytest.raises(Aborted):
        abort_with(context, worker_errors.NotLoaded("no model"))  # type: ignore[arg-type]
    assert context.aborted == (grpc.StatusCode.FAILED_PRECONDITION, "no model")
    assert context.trailing == ()


# --- the front end's side: status -> APIError -------------------------------------------------------


def rpc_error(code: grpc.StatusCode, details: str, param: str | None = None) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata((PARAM_METADATA_KEY, param)) if param else grpc.aio.Metadata()
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=details)


@pytest.mark.parametrize(
    ("code", "param", "kind", "status", "api_code", "api_param"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "messages", InvalidRequest, 400, "invalid_request", "messages"),
        (grpc.StatusCode.INVALID_ARGUMENT, None, InvalidRequest, 400, "invalid_request", None),
        (grpc.StatusCode.UNIMPLEMENTED, None, InvalidRequest, 400, "unsupported_by_model", "model"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, ServiceUnavailable, 503, "out_of_memory", None),
        (grpc.StatusCode.FAILED_PRECONDITION, None, WorkerFailed, 500, "worker_failed", None),
        (grpc.StatusCode.INTERNAL, None, WorkerFailed, 500, "worker_failed", None),
        (grpc.StatusCode.UNKNOWN, None, WorkerFailed, 500, "worker_failed", None),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, WorkerFailed, 500, "worker_failed", None),
    ],
)  # fmt: skip
def test_status_becomes_one_api_error(
    code: grpc.StatusCode,
    param: str | None,
    kind: type[APIError],
    status: int,
    api_code: str,
    api_param: str | None,
) -> None:
    error = rpc_error_to_api_error(rpc_error(code, "what went wrong", param), "echo")
    assert type(error) is kind
    assert (error.status, error.code, error.param) == (status, api_code, api_param)
    assert "what went wrong" in error.message


def test_out_of_memory_names_the_model() -> None:
    error = rpc_error_to_api_error(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "CUDA OOM"), "echo")
    assert error.message == "model 'echo': CUDA OOM"


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED])
def test_a_worker_that_went_away_is_worker_gone_for_the_worker_to_explain(code: grpc.StatusCode) -> None:
    error = rpc_error_to_api_error(rpc_error(code, "socket closed"), "echo")
    assert isinstance(error, WorkerGone)
    assert not isinstance(error, APIError)
