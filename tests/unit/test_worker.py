"""frontend/workers/worker.py: what the Worker decides before a call reaches its process."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from frontend.errors import InvalidRequest
from frontend.workers.messages import Generation, LoadInfo, Message, Sampling
from frontend.workers.worker import Worker

SAMPLING = Sampling(temperature=0.0, top_p=1.0, top_k=1, min_p=0.0)


class Unreachable:
    """A client the test must never get to."""

    def generate(self, generation: Generation) -> None:
        raise AssertionError("the request reached the worker process")


def worker(has_chat_template: bool) -> Worker:
    return Worker(
        config=SimpleNamespace(name="plain"),  # type: ignore[arg-type]
        process=None,  # type: ignore[arg-type]
        client=Unreachable(),  # type: ignore[arg-type]
        socket_path=Path("unused.sock"),
        info=LoadInfo(has_chat_template=has_chat_template, context_size=2048, load_seconds=0.0),
    )


async def test_chat_to_a_model_without_a_chat_template_is_refused_naming_the_model() -> None:
    conversation = Generation(prompt=[Message("user", "hello")], sampling=SAMPLING)
    with pytest.raises(InvalidRequest) as caught:
        await anext(worker(has_chat_template=False).generate(conversation))
    assert caught.value.param == "model"
    assert "'plain' has no chat template" in caught.value.message
    assert "/v1/completions" in caught.value.message
