"""Small helpers the manager and watchdog tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from frontend.workers.messages import Generation, Sampling
from frontend.workers.worker import Worker

SAMPLING = Sampling(temperature=0.0, top_p=1.0, top_k=1, min_p=0.0)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def generate(worker: Worker, prompt: str) -> str:
    generation = Generation(prompt=prompt, sampling=SAMPLING)
    return "".join([delta.text async for delta in worker.generate(generation)])
