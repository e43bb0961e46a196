"""The installed `onebox` console command, started the way `make run` starts it.

pytest puts the repository root on sys.path, so every other test imports the code whether or not it is
installed; these start `.venv/bin/onebox` itself from a folder outside the repository, with no PYTHONPATH,
which is what a new user gets. A set-up that installs the package before its generated gRPC code exists
fails here (ModuleNotFoundError: onebox_proto).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.conftest import CHAT_MODEL, OneboxServer

pytestmark = pytest.mark.e2e

# Only what an interactive shell would have: nothing that adds the repository to the import path.
NO_IMPORT_HINTS: dict[str, str | None] = {"PYTHONPATH": None, "PYTHONHOME": None, "PYTHONSTARTUP": None}


def installed_command() -> Path:
    command = Path(sys.executable).parent / "onebox"
    if not command.exists():
        pytest.fail(f"{command} is missing: the set-up (make setup) installs the onebox console command")
    return command


def run_installed(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in NO_IMPORT_HINTS} | (env or {})
    return subprocess.run(
        [str(installed_command()), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_installed_command_answers_help_from_another_folder(tmp_path: Path) -> None:
    result = run_installed(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert "run" in result.stdout


def test_version_is_printed(tmp_path: Path) -> None:
    result = run_installed(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("onebox ")


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--address", "127.0.0.1:99999"], {}, "port 99999 is out of range"),
        ([], {"ONEBOX_THREADS": "x"}, "expected a whole number, got 'x'"),
        (
            ["--api-keys", "/nonexistent/onebox-keys.txt"],
            {},
            "no such key file: /nonexistent/onebox-keys.txt",
        ),
    ],
)
def test_bad_settings_get_a_message_not_a_traceback(
    tmp_path: Path, models_dir: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    result = run_installed(tmp_path, "run", "--models-path", str(models_dir), *args, env=env)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_gets_a_message_and_no_ready_line(tmp_path: Path, models_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_installed(
            tmp_path, "run", "--models-path", str(models_dir), "--address", f"127.0.0.1:{port}"
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "ready on" not in result.stderr


def test_a_preload_that_fails_keeps_readyz_unready(models_dir: Path) -> None:
    server = OneboxServer(models_dir, "--preload", "nope")
    try:
        deadline = time.monotonic() + 30
        while (ready := httpx.get(f"{server.url}/readyz", timeout=5)).json()["status"] == "starting":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert ready.status_code == 503
        assert "nope" in ready.json()["failed"]
    finally:
        server.stop()


def test_installed_command_serves_a_chat_reply_from_another_folder(models_dir: Path, tmp_path: Path) -> None:
    server = OneboxServer(models_dir, env=NO_IMPORT_HINTS, command=[str(installed_command())], cwd=tmp_path)
    try:
        wait_ready(server)
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)
        reply = client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8
        )
        assert reply.choices[0].message.content
        ready_line = next(line for line in server.output().splitlines() if "ready on" in line)
        assert f"{server.url}/v1" in ready_line
        assert f"{CHAT_MODEL} (llama-cpp)" in ready_line
    finally:
        server.stop()


def wait_ready(server: OneboxServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{server.url}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, f"not ready after {timeout}s:\n{server.output()}"
        time.sleep(0.1)
    # the ready line follows /readyz by a moment: it waits for aiohttp to report the sockets listening
    while "ready on" not in server.output():
        assert time.monotonic() < deadline, f"no ready line:\n{server.output()}"
        time.sleep(0.05)


def test_run_help_shows_each_default(tmp_path: Path) -> None:
    result = run_installed(tmp_path, "run", "--help", env={"ONEBOX_API_KEYS": "sk-not-shown"})
    text = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stderr
    assert "(default: 127.0.0.1:8080)" in text and "(default: INFO)" in text
    assert "--log-level {DEBUG,INFO,WARNING,ERROR} the least important messages logged" in text
    assert "sk-not-shown" not in text


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ([], {}, "/from/file"),
        ([], {"ONEBOX_MODELS_PATH": "/from/env"}, "/from/env"),
        (["--models-path", "/from/flag"], {"ONEBOX_MODELS_PATH": "/from/env"}, "/from/flag"),
    ],
)
def test_config_file_is_below_the_environment_and_the_flags(
    tmp_path: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    (tmp_path / "onebox.yaml").write_text("models_path: /from/file\naddress: 127.0.0.1:0\n")
    result = run_installed(tmp_path, "run", "--config", "onebox.yaml", *args, env=env)
    assert result.returncode == 2
    assert f"models path {named} is not a folder" in result.stderr


def test_config_file_with_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "onebox.yaml").write_text("adress: 127.0.0.1:9000\n")
    result = run_installed(tmp_path, "run", env={"ONEBOX_CONFIG": "onebox.yaml"})
    assert result.returncode == 2
    assert "onebox.yaml: unknown key 'adress'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_server_takes_its_settings_from_a_config_file(models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "onebox.yaml").write_text("max-body-size: 100\n")
    server = OneboxServer(models_dir, "--config", str(tmp_path / "onebox.yaml"))
    try:
        big = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "x" * 200}]}
        assert httpx.post(f"{server.url}/v1/chat/completions", json=big, timeout=30).status_code == 413
    finally:
        server.stop()
