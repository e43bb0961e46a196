"""`onebox models ...` through the installed command, from a folder outside the repository (issue 20)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_installed_command import run_installed

pytestmark = pytest.mark.e2e

SHA = "0" * 64


def gallery(tmp_path: Path, uri: str = "https://example.invalid/tiny.gguf") -> str:
    entry = {"name": "tiny-model", "license": "mit", "size": "1 MB", "config": {"backend": "llama-cpp"},
             "files": [{"filename": "tiny.gguf", "uri": uri, "sha256": SHA}]}  # fmt: skip
    index = tmp_path / "index.yaml"
    index.write_text(yaml.safe_dump([entry]))
    return f"local={index}"


def test_an_unknown_name_suggests_a_close_one_and_the_listing_command(tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = run_installed(tmp_path, "models", "install", "tiny", "--models-path", str(models),
                           "--galleries", gallery(tmp_path))  # fmt: skip
    assert result.returncode == 1
    assert "did you mean tiny-model?" in result.stderr
    assert "`onebox models available`" in result.stderr
    assert result.stderr.count("no gallery entry") == 1
    assert "Traceback" not in result.stderr


def test_list_takes_the_models_path_after_the_action_and_shows_headers(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "here").mkdir(parents=True)
    (models / "here" / "w.gguf").write_bytes(b"x" * 2048)
    (models / "here.yaml").write_text("name: here\nbackend: llama-cpp\nfile: here/w.gguf\n")
    (models / "gone.yaml").write_text("name: gone\nbackend: llama-cpp\nfile: gone/w.gguf\n")
    result = run_installed(tmp_path, "models", "list", "--models-path", str(models))
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "BACKEND", "SIZE", "WEIGHTS", "FILE"]
    assert rows[0].split() == ["gone", "llama-cpp", "-", "missing", "gone/w.gguf"]
    assert rows[1].split() == ["here", "llama-cpp", "2.0", "KiB", "present", "here/w.gguf"]


def test_available_shows_headers_and_sizes(tmp_path: Path) -> None:
    result = run_installed(tmp_path, "models", "available", "--models-path", str(tmp_path / "models"),
                           "--galleries", gallery(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["ID", "BACKEND", "SIZE", "INSTALLED", "LICENSE"]
    assert row.split() == ["local@tiny-model", "llama-cpp", "1", "MB", "no", "mit"]


def test_an_unreachable_source_fails_at_once_with_one_clear_message(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = run_installed(
        tmp_path, "models", "install", "tiny-model", "--models-path", str(tmp_path / "models"),
        "--galleries", gallery(tmp_path, f"http://127.0.0.1:{port}/tiny.gguf"),
        "--allow-private-downloads", "--allow-http-downloads",
    )  # fmt: skip
    assert result.returncode == 1
    assert time.monotonic() - started < 20  # not a minute of retries
    lines = [line for line in result.stderr.split("\n") if "connection refused" in line]
    assert len(lines) == 1, result.stderr
    assert "\r" not in lines[0] and f"connection refused by 127.0.0.1:{port}" in lines[0]
    assert "ClientConnector" not in result.stderr and "Traceback" not in result.stderr
