"""README.md stays true: each ```python snippet (and each fenced shell snippet that runs `curl`) is run
against a real server, its address put in for 127.0.0.1:8080.

A snippet that names a model the test server does not have is skipped with the reason
`README snippet needs model(s) ...`, never silently. Snippets run in a fresh folder, with the `client` an
earlier snippet defines already there, and a short silent `talk.wav` for the audio example.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import wave
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.conftest import REPO, OneboxServer

pytestmark = pytest.mark.e2e

README = REPO / "README.md"
DEFAULT_URL = re.compile(r"http://(127\.0\.0\.1|localhost):8080")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
MODEL_NAMED = re.compile(r"""model\s*[=:]\s*["']([\w.-]+)["']""")


def snippets(kinds: set[str]) -> list[tuple[int, str]]:
    """(line number, code) of each fenced block of one of these kinds."""
    text = README.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m[2]) for m in FENCE.finditer(text) if m[1] in kinds]


PYTHON = snippets({"python"})
CURL = [(line, code) for line, code in snippets({"sh", "bash", "shell", "console"}) if "curl " in code]


def ids(found: list[tuple[int, str]]) -> list[str]:
    return [f"README.md:{line}" for line, _ in found]


@pytest.fixture(scope="module")
def offered(server: OneboxServer) -> set[str]:
    models = httpx.get(f"{server.url}/v1/models", timeout=30).json()["data"]
    return {m["id"] for m in models if m.get("installed", True)}


def skip_unless_served(code: str, offered: set[str]) -> None:
    missing = sorted(set(MODEL_NAMED.findall(code)) - offered)
    if missing:
        pytest.skip(f"README snippet needs model(s) {', '.join(missing)}, which the test server lacks")


def silent_wav(path: Path, seconds: float = 1.0, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))


@pytest.mark.parametrize(("line", "code"), PYTHON, ids=ids(PYTHON))
def test_python_snippet_runs(
    line: int, code: str, server: OneboxServer, offered: set[str], tmp_path: Path, monkeypatch
) -> None:
    skip_unless_served(code, offered)
    monkeypatch.chdir(tmp_path)
    silent_wav(tmp_path / "talk.wav")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)
    namespace = {"__name__": "readme", "client": client}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(DEFAULT_URL.sub(server.url, code), f"README.md:{line}", "exec"), namespace)


@pytest.mark.parametrize(("line", "code"), CURL, ids=ids(CURL))
def test_curl_snippet_runs(
    line: int, code: str, server: OneboxServer, offered: set[str], tmp_path: Path
) -> None:
    skip_unless_served(code, offered)
    if shutil.which("curl") is None:
        pytest.skip("README curl snippets need the curl command, which this machine lacks")
    script = DEFAULT_URL.sub(server.url, code)
    result = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert result.returncode == 0, result.stderr
    assert '"error"' not in result.stdout, result.stdout


def test_the_readme_has_snippets_to_check() -> None:
    assert PYTHON, "no ```python snippets found in README.md: has the fence syntax changed?"
