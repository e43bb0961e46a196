"""End-to-end harness: the real `onebox run` in a subprocess, real workers, real models.

Each server gets a free port and its own models directory (the installed weights hard-linked in, plus
YAMLs that only tests need), and is stopped with its whole process tree at the end.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
CHAT_MODEL = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def link_tree(source: Path, dest: Path) -> None:
    """Hard-link installed weights into a test models dir (copy where links are impossible)."""
    for path in source.rglob("*"):
        target = dest / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def make_models_dir(dest: Path) -> Path:
    link_tree(MODELS, dest)
    base = (MODELS / f"{CHAT_MODEL}.yaml").read_text()
    # the same weights under a second name: a second, independent worker process
    (dest / "smollm2-second.yaml").write_text(base.replace(f"name: {CHAT_MODEL}", "name: smollm2-second"))
    # a model that refuses chat: its GGUF template is switched off and the YAML gives none
    (dest / "no-template.yaml").write_text(
        base.replace(f"name: {CHAT_MODEL}", "name: no-template") + "template:\n  use_model_template: false\n"
    )
    # weights that are not a GGUF: the worker starts, then loading fails
    (dest / "broken").mkdir(exist_ok=True)
    (dest / "broken" / "broken.gguf").write_bytes(b"this is not a gguf file" * 100)
    (dest / "broken.yaml").write_text("name: broken\nbackend: llama-cpp\nfile: broken/broken.gguf\n")
    return dest


class OneboxServer:
    """A real server process, like a user's `onebox run`."""

    def __init__(
        self,
        models_path: Path,
        *args: str,
        env: dict[str, str | None] | None = None,
        command: list[str] | None = None,
        cwd: Path = REPO,
    ) -> None:
        """`env` adds to this process's environment (None unsets a variable); `command` replaces
        `python -m frontend.cli`, e.g. with the installed console script."""
        self.models_path = models_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        address = f"127.0.0.1:{self.port}"
        command = [*(command or [sys.executable, "-m", "frontend.cli"]), "run",
                   "--address", address, "--models-path", str(models_path), *args]  # fmt: skip
        self.log = open(models_path.parent / f"server-{self.port}.log", "w+")  # noqa: SIM115
        environment = {**os.environ, **(env or {})}
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in environment.items() if v is not None},
        )
        self._wait_alive()

    def _wait_alive(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not come up:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def workers(self, model: str | None = None) -> list[psutil.Process]:
        """Worker processes of this server (their command line names the model)."""
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            mine = "backends.runner" in cmd and f"--parent-pid={self.process.pid}" in self._flags(cmd)
            if mine and (model is None or cmd[cmd.index("--model") + 1] == model):
                found.append(proc)
        return found

    @staticmethod
    def _flags(cmd: list[str]) -> set[str]:
        return {f"{a}={b}" for a, b in itertools.pairwise(cmd)}

    def stop(self, sig: int = signal.SIGTERM) -> None:
        workers = self.workers()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        psutil.wait_procs(workers, timeout=10)
        for worker in workers:
            if worker.is_running():
                worker.kill()
        self.log.close()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (MODELS / CHAT_MODEL).is_dir():
        pytest.fail("the default model is not installed: run `make models` (make test does)")
    return make_models_dir(tmp_path_factory.mktemp("onebox") / "models")


@pytest.fixture(scope="session")
def server(models_dir: Path) -> Iterator[OneboxServer]:
    srv = OneboxServer(models_dir, "--max-body-size", str(2 * 1024 * 1024))
    yield srv
    srv.stop()


@pytest.fixture()
def fresh_server(models_dir: Path) -> Iterator[OneboxServer]:
    """A server of the test's own, for tests that stop or kill it."""
    srv = OneboxServer(models_dir)
    yield srv
    srv.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def client(server: OneboxServer):  # type: ignore[no-untyped-def]
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)
