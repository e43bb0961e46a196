"""Process plumbing for the manager: spawning a worker, its output, its threads file, stopping its tree.

Only frontend/workers/manager.py imports this module: the manager owns worker lifecycles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

import psutil

from onebox_common.model_config import ModelConfig

if TYPE_CHECKING:
    from pathlib import Path

    from frontend.workers.worker import Worker

OUTPUT_LINE_LIMIT = 1024 * 1024


async def spawn_worker(
    config: ModelConfig, address: str, log_level: str = "INFO"
) -> asyncio.subprocess.Process:
    """Start a worker process; its command line names the model so `ps` tells workers apart."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backends.runner",
        "--model", config.name, "--backend", config.backend, "--address", address,
        "--parent-pid", str(os.getpid()), "--log-level", log_level,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        limit=OUTPUT_LINE_LIMIT,
        # Its own session: a Ctrl-C in the terminal reaches the server, which then stops workers in order.
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def write_threads(path: Path, threads: int) -> None:
    # rewritten in place (never truncated) so that a worker reading it mid-write sees a whole number
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, b"%08d" % threads, 0)
    finally:
        os.close(fd)


async def terminate_tree(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM, a grace period, then SIGKILL for the process and everything it started.

    Workers lead their own process group (start_new_session), so signalling the group reaches children
    started at any time; children that linger would otherwise hold the output pipe, and asyncio's
    wait() returns only once that pipe closes.
    """
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    signal_group(process, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        signal_group(process, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        await process.wait()


def signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signum)
            return
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)


async def pump_output(worker: Worker) -> None:
    """Stream a worker's output to a per-model logger, each line at the level the worker logged it at."""
    stream = worker.process.stdout
    if stream is None:
        return
    logger = logging.getLogger(f"onebox.worker.{worker.name}")
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line over the limit: asyncio drops it; say so and keep reading
            line = b"[an output line longer than %d bytes was dropped]" % OUTPUT_LINE_LIMIT
        if not line:
            return
        level, text = worker_log_level(line.decode(errors="replace").rstrip())
        logger.log(level, "%s", text)


def worker_log_level(line: str) -> tuple[int, str]:
    """'ERROR onebox.worker: x' (backends/runner.py's format) -> (logging.ERROR, 'onebox.worker: x'), so that
    filtering the server's log by level finds worker errors; other output (native libraries) is INFO."""
    word, _, rest = line.partition(" ")
    level = logging.getLevelNamesMapping().get(word)
    return (level, rest) if level is not None and rest else (logging.INFO, line)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
