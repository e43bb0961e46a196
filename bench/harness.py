"""What the benches share: a real `onebox run` on a free port, and one timed streamed chat request."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def linked_models_dir(source: Path, extra_yamls: dict[str, str]) -> Path:
    """A throwaway models dir: the installed weights hard-linked, plus YAMLs only this bench needs."""
    dest = Path(tempfile.mkdtemp(prefix="onebox-bench-")) / "models"
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
    for name, text in extra_yamls.items():
        (dest / f"{name}.yaml").write_text(text)
    return dest


@contextmanager
def onebox_server(models_path: Path, *args: str, port: int = 0) -> Iterator[int]:
    """Start the server, wait for /readyz, yield its port; SIGTERM and wait at the end, even on errors."""
    port = port or free_port()
    command = [sys.executable, "-m", "frontend.cli", "run", "--address", f"127.0.0.1:{port}",
               "--models-path", str(models_path), "--log-level", "WARNING", *args]  # fmt: skip
    with tempfile.TemporaryFile() as output:
        server = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_ready(server, port, output)
            yield port
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def wait_ready(server: subprocess.Popen[bytes], port: int, output) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output.seek(0)
            raise RuntimeError(f"server exited early:\n{output.read().decode(errors='replace')}")
        try:
            if request(port, "GET", "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not become ready")


def request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def time_to_first_token(port: int, model: str, prompt: str, max_tokens: int = 8) -> float:
    """Seconds from sending a streamed chat request to the first chunk that carries text."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
            "max_tokens": max_tokens, "temperature": 0}  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{model}: HTTP {response.status}: {response.read()[:500]!r}")
        first = None
        for line in response:
            if (
                first is None
                and line.startswith(b"data: {")
                and b'"content":"' in line
                and b'"content":""' not in line
            ):
                first = time.perf_counter() - started
        if first is None:
            raise RuntimeError(f"{model}: the stream carried no text")
        return first
    finally:
        conn.close()
