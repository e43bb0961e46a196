"""Files the server made (images asked for as `url`), kept for a while under unguessable names.

A name is the capability: 32 random URL-safe characters from `secrets` plus a suffix, and the only names
ever looked up are ones of exactly that shape, so a request can never reach another file. A periodic
sweep (an app cleanup_ctx) deletes files older than the configured age.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

log = logging.getLogger("onebox.generated")

NAME = re.compile(r"[A-Za-z0-9_-]{32}\.png")
TOKEN_BYTES = 24  # 24 random bytes: 32 URL-safe characters


class GeneratedFiles:
    def __init__(self, folder: Path, max_age: float) -> None:
        self.folder = folder
        self.max_age = max_age

    def save_png(self, data: bytes) -> str:
        """Write the file under a fresh name and return the name; readers never see a partial file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{secrets.token_urlsafe(TOKEN_BYTES)}.png"
        partial = self.folder / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(self.folder / name)
        return name

    def find(self, name: str) -> Path | None:
        if not NAME.fullmatch(name):
            return None
        path = self.folder / name
        return path if path.is_file() else None

    def sweep(self, now: float | None = None) -> int:
        """Delete generated files (and abandoned partial ones) older than max_age; return how many."""
        cutoff = (time.time() if now is None else now) - self.max_age
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folder):
                ours = NAME.fullmatch(entry.name) or entry.name.endswith(".png.partial")
                with contextlib.suppress(FileNotFoundError):
                    if ours and entry.is_file() and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
        return removed


GENERATED = web.AppKey("generated", GeneratedFiles)


def sweep_interval(max_age: float) -> float:
    return min(max(max_age / 4, 1.0), 300.0)


async def generated_files_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sweep the folder in the background while the server runs. The folder itself is made by the first
    `save_png`: a server with no image model leaves no empty folder in the working directory."""
    files = app[GENERATED]
    task = asyncio.create_task(sweep_forever(files))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def sweep_forever(files: GeneratedFiles) -> None:
    while True:
        try:
            removed = await asyncio.to_thread(files.sweep)
        except OSError as error:
            log.warning("sweeping %s failed: %s", files.folder, error)
        else:
            if removed:
                log.info("removed %d generated file(s) older than %.0fs", removed, files.max_age)
        await asyncio.sleep(sweep_interval(files.max_age))
