"""Worker output reaches the server's log at the level the worker logged it at, without a doubled prefix."""

from __future__ import annotations

import logging

import pytest

from frontend.workers.processes import worker_log_level


@pytest.mark.parametrize(
    ("line", "level", "text"),
    [
        ("ERROR onebox.worker: loading failed", logging.ERROR, "onebox.worker: loading failed"),
        ("WARNING onebox.worker.llama-cpp: slow", logging.WARNING, "onebox.worker.llama-cpp: slow"),
        ("INFO onebox.worker: listening", logging.INFO, "onebox.worker: listening"),
        ("llama_model_load: error loading model", logging.INFO, "llama_model_load: error loading model"),
        ("ERROR", logging.INFO, "ERROR"),
    ],
)
def test_worker_output_is_logged_at_its_own_level_without_a_doubled_prefix(line, level, text) -> None:
    assert worker_log_level(line) == (level, text)
