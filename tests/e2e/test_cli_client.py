"""`onebox ps` and `onebox chat`, run as the installed command against a running server.

The real server checks what a user sees; a small stand-in server (the standard library's, in a thread)
records what `chat` sends, to check the conversation it keeps, and streams slowly, to check Ctrl-C.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CHAT_MODEL, OneboxServer, free_port
from tests.e2e.test_installed_command import NO_IMPORT_HINTS, installed_command, run_installed

pytestmark = pytest.mark.e2e


def chat_command(tmp_path: Path, url: str, *args: str, stdin: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in NO_IMPORT_HINTS}
    return subprocess.run(
        [str(installed_command()), "chat", *args, "--url", url],
        cwd=tmp_path,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ps_lists_the_loaded_models_as_a_table(server: OneboxServer, tmp_path: Path) -> None:
    assert httpx.post(f"{server.url}/backend/load", json={"model": CHAT_MODEL}, timeout=60).status_code == 200
    result = run_installed(tmp_path, "ps", "--url", server.url)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["MODEL", "STATE", "PID", "MEMORY", "IN", "FLIGHT", "REQUESTS", "IDLE"]
    row = next(r for r in rows if r.startswith(CHAT_MODEL))
    assert "ready" in row and "MiB" in row


def test_ps_with_no_server_says_so_in_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_installed(tmp_path, "ps", env={"ONEBOX_URL": url})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert f"no onebox server answers at {url}" in result.stderr


def test_chat_answers_each_line_of_stdin(server: OneboxServer, tmp_path: Path) -> None:
    result = chat_command(
        tmp_path, server.url, CHAT_MODEL, "--max-tokens", "8", stdin="Say hello.\nSay goodbye.\n/bye\n"
    )
    assert result.returncode == 0, result.stderr
    answers = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(answers) >= 2
    assert result.stderr == ""


def test_chat_with_an_unknown_model_is_one_line_from_the_server(server: OneboxServer, tmp_path: Path) -> None:
    result = chat_command(tmp_path, server.url, "no-such-model", stdin="hello\n")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "the model 'no-such-model' does not exist" in result.stderr  # the server's 404 message
    assert "Traceback" not in result.stderr


# --- against a stand-in server ----------------------------------------------------------------------


class StandIn(BaseHTTPRequestHandler):
    """Records each chat request; the first answer stalls after one word when the server is `slow`."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.reply(200, b'{"id": "fake", "object": "model"}', "application/json")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server: Recorder = self.server  # type: ignore[assignment]
        server.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for word in ("one ", "two"):
            chunk = {"choices": [{"index": 0, "delta": {"content": word}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            if server.slow and len(server.bodies) == 1:
                server.cancelled.wait(30)  # until the client hangs up (or the test ends)
                return
        self.wfile.write(b"data: [DONE]\n\n")

    def reply(self, status: int, data: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, slow: bool) -> None:
        super().__init__(("127.0.0.1", 0), StandIn)
        self.bodies: list[dict] = []
        self.slow = slow
        self.cancelled = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def stand_in(slow: bool) -> Iterator[Recorder]:
    server = Recorder(slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.cancelled.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield from stand_in(slow=False)


@pytest.fixture
def slow_recorder() -> Iterator[Recorder]:
    yield from stand_in(slow=True)


def test_chat_keeps_the_conversation_and_the_system_message(recorder: Recorder, tmp_path: Path) -> None:
    result = chat_command(
        tmp_path, recorder.url, "fake", "--system", "Be brief.", "--max-tokens", "5", stdin="first\nsecond\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "one two\none two\n"
    last = recorder.bodies[-1]
    assert last["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one two"},
        {"role": "user", "content": "second"},
    ]
    assert last["stream"] is True and last["max_tokens"] == 5


def test_ctrl_c_stops_the_answer_and_the_chat_goes_on(slow_recorder: Recorder, tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k not in NO_IMPORT_HINTS}
    chat = subprocess.Popen(
        [str(installed_command()), "chat", "fake", "--url", slow_recorder.url],
        cwd=tmp_path,
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        chat.stdin.write(b"tell me a long story\n")
        chat.stdin.flush()
        assert read_until(chat, b"one ") == b"one "
        time.sleep(0.5)  # Ctrl-C while the answer waits for its next word, as a person's would
        chat.send_signal(signal.SIGINT)
        out, err = chat.communicate(b"and then?\n/bye\n", timeout=30)
    finally:
        chat.kill()
    assert chat.returncode == 0, err
    assert out.decode() == "\n[stopped]\none two\n"  # what followed the first word
    assert slow_recorder.bodies[-1]["messages"][1] == {"role": "assistant", "content": "one "}


def read_until(process: subprocess.Popen, expected: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while expected not in seen and time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 0.1)[0]:
            seen += os.read(process.stdout.fileno(), 1024)
    return seen
