"""An install job's state, as the API and the CLI show it."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum


class Phase(StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    RETRYING = "retrying"  # waiting to ask a source again; `error` says what went wrong
    VERIFYING = "verifying"
    CONFIGURING = "configuring"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL = frozenset({Phase.DONE, Phase.FAILED, Phase.CANCELLED})


@dataclass
class Job:
    model: str
    source: str  # gallery@name, or the URL it came from
    total: int = 0  # bytes; 0 when no size is known beforehand
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    phase: Phase = Phase.QUEUED
    file: str | None = None  # the file being fetched
    bytes_done: int = 0
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.phase not in FINAL

    def advance(self, nbytes: int) -> None:
        self.bytes_done += nbytes

    def retrying(self, problem: str | None) -> None:
        """Waiting before another attempt (problem), or asking again (None)."""
        self.phase = Phase.DOWNLOADING if problem is None else Phase.RETRYING
        self.error = problem

    def finish(self, phase: Phase, error: str | None = None) -> None:
        self.phase, self.error, self.finished = phase, error, time.time()

    def percent(self) -> float | None:
        if self.phase is Phase.DONE:
            return 100.0
        if not self.total:
            return None
        return round(min(100.0, 100.0 * self.bytes_done / self.total), 1)

    def describe(self) -> dict:
        return {
            "uuid": self.uuid,
            "model": self.model,
            "source": self.source,
            "status": self.phase.value,
            "phase": self.phase.value,
            "file": self.file,
            "bytes_done": self.bytes_done,
            "total_bytes": self.total or None,
            "percent": self.percent(),
            "error": self.error,
            "created": self.created,
            "finished": self.finished,
        }
