"""Gallery install speed: the real installer against a plain download of the same bytes, both from 127.0.0.1.

A local server stands in for Hugging Face (HF_ENDPOINT) and serves the installed whisper-base files at the
paths the built-in index names. The baseline streams the same URLs to disk with one aiohttp session and no
checks; onebox's install adds the .partial files, the sha256 pass, the rename and the YAML.

    .venv/bin/python bench/gallery_install.py --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from harness import REPO

from gallery.download import http_url, huggingface_endpoint
from gallery.index import Entry, GallerySource, builtin_index, parse_index
from gallery.installer import Installer
from gallery.jobs import Phase

ENTRY = "whisper-base"


def hub_folder(entry: Entry) -> Path:
    """The installed files, hard-linked at their Hugging Face paths."""
    folder = Path(tempfile.mkdtemp(prefix="onebox-hub-"))
    for spec in entry.files:
        url = http_url(spec.uri or "") or ""
        served = folder / url.removeprefix(huggingface_endpoint() + "/")
        served.parent.mkdir(parents=True, exist_ok=True)
        os.link(REPO / "models" / ENTRY / spec.filename, served)
    return folder


async def plain_download(entry: Entry, dest: Path) -> float:
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for spec in entry.files:
            async with session.get(http_url(spec.uri or "") or "") as response:
                response.raise_for_status()
                with (dest / spec.filename.replace("/", "_")).open("wb") as out:
                    async for chunk in response.content.iter_chunked(1024 * 1024):
                        out.write(chunk)
    return time.perf_counter() - started


async def onebox_install(entry: Entry, models: Path) -> float:
    started = time.perf_counter()
    async with Installer(models, (GallerySource("onebox", str(builtin_index())),)) as installer:
        job = await installer.install(entry, f"onebox@{ENTRY}", "whisper-bench")
    if job.phase is not Phase.DONE:
        raise SystemExit(f"install failed: {job.error}")
    return time.perf_counter() - started


async def run(rounds: int) -> None:
    entry = next(e for e in parse_index(builtin_index().read_text(), "index.yaml") if e.name == ENTRY)
    app = web.Application()
    app.router.add_static("/", hub_folder(entry))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
    plain, onebox = [], []
    try:
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                plain.append(await plain_download(entry, Path(a)))
                onebox.append(await onebox_install(entry, Path(b)))
    finally:
        await runner.cleanup()
    size_mb = entry.total_size() / 1e6
    p, o = statistics.median(plain), statistics.median(onebox)
    print(f"{ENTRY}: {size_mb:.0f} MB from 127.0.0.1, {rounds} rounds (median)")
    print(f"  plain download          {p * 1000:8.0f} ms  {size_mb / p:7.0f} MB/s")
    print(f"  onebox install          {o * 1000:8.0f} ms  {size_mb / o:7.0f} MB/s")
    print(f"  ratio (plain / onebox)  {p / o:8.3f}   (1.0: checks and bookkeeping cost nothing)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    if not (REPO / "models" / ENTRY / "model.bin").is_file():
        raise SystemExit(f"{ENTRY} is not installed: run `make models`")
    asyncio.run(run(parser.parse_args().rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
