"""frontend/workers/manager.py: the worker lifecycle, driven with the fake worker (tests/fakes/)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from frontend.errors import NotFound, WorkerFailed
from frontend.workers.manager import ProcessManager
from frontend.workers.messages import Generation
from frontend.workers.processes import describe_exit
from onebox_common.registry import UnknownModel
from tests.integration.helpers import SAMPLING, generate, wait_until

FAKE_WORKER = Path(__file__).resolve().parents[1] / "fakes" / "fake_worker.py"


def exited(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet (an orphan's new parent need not reap it)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def pid_of(manager: ProcessManager, name: str) -> int:
    async with manager.use(name) as worker:
        return worker.pid


async def test_concurrent_first_requests_start_one_worker(manager, spawner, write_model) -> None:
    write_model("echo")
    pids = await asyncio.gather(*(pid_of(manager, "echo") for _ in range(5)))
    assert spawner.count == 1
    assert set(pids) == {spawner.processes[0].pid}


async def test_ready_worker_is_reused_by_the_next_request(manager, spawner, write_model) -> None:
    write_model("echo")
    await pid_of(manager, "echo")
    await pid_of(manager, "echo")
    assert spawner.count == 1


async def test_worker_serves_the_fake_models_echo(manager, write_model) -> None:
    write_model("echo")
    async with manager.use("echo") as worker:
        assert await generate(worker, "one two three") == "one two three"


async def test_load_failure_raises_worker_failed_with_the_models_message(manager, write_model) -> None:
    write_model("broken", behaviour={"fail_on_load": "weights are corrupt"})
    with pytest.raises(WorkerFailed, match="weights are corrupt"):
        await pid_of(manager, "broken")


async def test_next_request_after_a_load_failure_starts_a_new_worker(manager, spawner, write_model) -> None:
    write_model("broken", behaviour={"fail_on_load": "weights are corrupt"})
    for _ in range(2):
        with pytest.raises(WorkerFailed):
            await pid_of(manager, "broken")
    assert spawner.count == 2


async def test_yaml_with_a_bad_option_starts_no_worker_nor_back_off(manager, spawner, write_model) -> None:
    write_model("typo", options={"batch_sise": 8})
    for _ in range(3):  # as many tries as a load back-off would count: each is the same plain "unknown"
        with pytest.raises(UnknownModel):
            await manager.ensure_ready("typo")
    assert spawner.count == 0


async def test_failed_worker_process_is_stopped(manager, spawner, write_model) -> None:
    write_model("broken", behaviour={"fail_on_load": "weights are corrupt"})
    with pytest.raises(WorkerFailed):
        await pid_of(manager, "broken")
    assert exited(spawner.processes[0].pid)


async def test_crash_on_load_names_the_exit_and_logs_the_output(manager, write_model, caplog) -> None:
    caplog.set_level(logging.INFO)
    write_model("crashy", behaviour={"crash_on_load": True})
    with pytest.raises(WorkerFailed) as caught:
        await pid_of(manager, "crashy")
    assert "exit code 3" in caught.value.message
    # what a worker prints can hold other requests' text and server paths: the log has it, the client not
    assert "crashing while loading on purpose" not in caught.value.message
    assert "crashing while loading on purpose" in caplog.text


async def test_crash_mid_generation_names_the_exit_not_the_output(manager, write_model, caplog) -> None:
    caplog.set_level(logging.INFO)
    write_model("crashy", behaviour={"crash_after_tokens": 2})
    with pytest.raises(WorkerFailed) as caught:
        async with manager.use("crashy") as worker:
            await generate(worker, "one two three four")
    assert "exit code 4" in caught.value.message
    assert "crashing mid-generation on purpose" not in caught.value.message
    assert "crashing mid-generation on purpose" in caplog.text


async def test_worker_killed_between_requests_is_respawned(manager, spawner, write_model) -> None:
    write_model("echo")
    async with manager.use("echo") as worker:
        first = worker
    os.kill(first.pid, signal.SIGKILL)
    await asyncio.wait_for(first.process.wait(), 10)
    async with manager.use("echo") as worker:
        assert worker.pid != first.pid
        assert await generate(worker, "back again") == "back again"
    assert spawner.count == 2


async def test_a_worker_killed_unnoticed_is_replaced_for_the_request(manager, spawner, write_model) -> None:
    write_model("echo")
    async with manager.use("echo") as worker:
        os.kill(worker.pid, signal.SIGKILL)
    # No await between the kill and the next use: the manager has not seen the exit yet.
    async with manager.use("echo") as worker:
        assert await generate(worker, "anyone there") == "anyone there"
    assert spawner.count == 2
    assert manager.metrics.retries.labels("echo")._value.get() == 1


async def test_a_request_waiting_on_a_stopped_worker_is_served_again(manager, spawner, write_model) -> None:
    write_model("slow", behaviour={"token_delay": 0.3})
    async with manager.use("slow") as worker:
        task = asyncio.create_task(generate(worker, "one two"))
        await asyncio.sleep(0.1)  # its first token is not out yet: nothing was sent
        await manager.stop("slow", "manual")
        assert await task == "one two"
    assert spawner.count == 2


async def test_a_stream_that_already_spoke_is_not_served_again(manager, spawner, write_model) -> None:
    write_model("slow", behaviour={"token_delay": 0.3})
    with pytest.raises(WorkerFailed, match="was stopped: manual"):
        async with manager.use("slow") as worker:
            async for delta in worker.generate(Generation(prompt="one two three", sampling=SAMPLING)):
                if delta.text:
                    await manager.stop("slow", "manual")
    assert spawner.count == 1


async def test_a_crash_is_not_retried_the_request_may_be_its_cause(manager, spawner, write_model) -> None:
    write_model("crashy", behaviour={"crash_after_tokens": 0})  # before its first token: nothing was sent
    with pytest.raises(WorkerFailed, match="exit code"):
        async with manager.use("crashy") as worker:
            await generate(worker, "boom")
    assert spawner.count == 1


async def test_stop_all_leaves_no_live_process(manager, spawner, write_model) -> None:
    write_model("one")
    write_model("two")
    await asyncio.gather(pid_of(manager, "one"), pid_of(manager, "two"))
    await manager.stop_all()
    assert spawner.count == 2
    assert all(exited(p.pid) for p in spawner.processes)
    assert manager.workers() == []


async def test_stopping_a_worker_kills_its_child_processes(manager, write_model) -> None:
    write_model("parent", behaviour={"start_child": True})
    async with manager.use("parent") as worker:
        children = psutil.Process(worker.pid).children(recursive=True)
    assert children
    assert await manager.stop("parent")
    assert await wait_until(lambda: all(exited(c.pid) for c in children), timeout=5)


async def test_missing_weights_fail_without_starting_a_worker(manager, spawner, write_model) -> None:
    write_model("echo")
    (write_model("echo").parent / "echo.gguf").unlink()
    with pytest.raises(NotFound) as caught:  # a client error that says what to fix, not a 500
        await pid_of(manager, "echo")
    assert caught.value.code == "model_not_installed"
    assert "onebox models install echo" in caught.value.message
    assert spawner.count == 0


async def test_worker_exits_when_its_parent_dies() -> None:
    # Not tmp_path: a unix socket path must stay under ~107 bytes.
    folder = tempfile.TemporaryDirectory(prefix="onebox-test-")
    socket = Path(folder.name) / "w.sock"
    # A short-lived parent that starts the worker as its own child, says its pid, then waits to be killed.
    launcher = (
        "import os, subprocess, sys, time\n"
        "worker = subprocess.Popen([sys.executable, sys.argv[1], '--model', 'orphan', '--backend', 'fake',\n"
        "    '--address', sys.argv[2], '--parent-pid', str(os.getpid())])\n"
        "print(worker.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", launcher, str(FAKE_WORKER), f"unix://{socket}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        worker_pid = int(parent.stdout.readline())
        assert await wait_until(socket.exists), "the worker never started listening"
        parent.kill()
        parent.wait()
        assert await wait_until(lambda: exited(worker_pid), timeout=10)
    finally:
        parent.kill()
        parent.wait()
        if not exited(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)
        folder.cleanup()


async def test_output_after_a_very_long_line_still_reaches_the_log(manager, write_model, caplog) -> None:
    caplog.set_level(logging.INFO)
    write_model("noisy", behaviour={"long_line_bytes": 100_000, "crash_on_load": True})
    with pytest.raises(WorkerFailed, match="exit code 3"):
        await pid_of(manager, "noisy")
    assert "crashing while loading on purpose" in caplog.text


@pytest.mark.parametrize(
    ("returncode", "described"),
    [(None, "still running"), (0, "exit code 0"), (3, "exit code 3"), (-9, "killed by SIGKILL"),
     (-200, "killed by signal 200")],
)  # fmt: skip
def test_exit_status_is_described_for_people(returncode: int | None, described: str) -> None:
    assert describe_exit(returncode) == described
