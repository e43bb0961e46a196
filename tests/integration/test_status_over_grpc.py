"""Both ends of the status mapping over a real gRPC channel: the runner's abort, the client's mapping."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest

from backends import errors as worker_errors
from backends.runner import Servicer, create_server
from frontend.errors import InvalidRequest
from frontend.workers.client import BackendClient, WorkerGone


class Refusing:
    """A loaded model whose Tokenize raises what it is told to."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def Tokenize(self, request: object, context: object) -> object:
        raise self.error


@pytest.fixture
async def serve() -> AsyncIterator:
    folder = tempfile.TemporaryDirectory(prefix="onebox-test-")  # a unix socket path must stay short
    started: list[tuple[grpc.Server, BackendClient]] = []

    async def start(error: Exception) -> BackendClient:
        address = f"unix://{Path(folder.name) / f'w{len(started)}.sock'}"
        servicer = Servicer("echo")
        servicer._model = Refusing(error)
        server, _ = create_server(address, servicer, max_workers=2)
        server.start()
        started.append((server, BackendClient(address, "echo")))
        return started[-1][1]

    yield start
    for server, client in started:
        await client.close()
        server.stop(grace=None)
    folder.cleanup()


async def test_param_named_by_the_worker_reaches_the_api_error(serve) -> None:
    client = await serve(worker_errors.InvalidRequest("that text is too long", param="input"))
    with pytest.raises(InvalidRequest) as caught:
        await client.tokenize("hello", add_special=True)
    assert (caught.value.message, caught.value.param) == ("that text is too long", "input")


async def test_an_rpc_the_model_lacks_is_unsupported_by_model(serve) -> None:
    client = await serve(worker_errors.InvalidRequest("unused"))
    with pytest.raises(InvalidRequest) as caught:
        await client.embed(["hello"], truncate=False)
    assert (caught.value.code, caught.value.param) == ("unsupported_by_model", "model")


async def test_a_call_on_a_closed_client_is_worker_gone(serve) -> None:
    client = await serve(worker_errors.InvalidRequest("unused"))
    await client.close()
    with pytest.raises(WorkerGone):
        await client.tokenize("hello", add_special=True)
