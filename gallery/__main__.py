"""python -m gallery install-defaults --models-path models

The default models arrive through the same installer as every gallery install: the entries of
gallery/defaults.yaml (pypi:// files, since these machines reach no model hub) and those of the built-in
index marked `default: true`. Files already in place with the right sha256 are kept, so a second run is fast.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from gallery.index import Entry, GallerySource, builtin_index, parse_index
from gallery.installer import Installer
from gallery.jobs import Phase

log = logging.getLogger("onebox.gallery")


def default_entries() -> list[Entry]:
    defaults = Path(__file__).with_name("defaults.yaml")
    entries = list(parse_index(defaults.read_text(), str(defaults)))
    entries += [e for e in parse_index(builtin_index().read_text(), "index.yaml") if e.default]
    return entries


async def install_defaults(models_path: Path) -> bool:
    ok = True
    async with Installer(models_path, (GallerySource("defaults", str(builtin_index())),)) as installer:
        for entry in default_entries():
            if entry.config is not None and installer.is_installed(entry.name):
                log.info("%s is installed", entry.name)
                continue
            job = await installer.install(entry, f"defaults@{entry.name}")
            if job.phase is not Phase.DONE:
                log.error("%s: %s", entry.name, job.error)
                ok = False
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gallery")
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = commands.add_parser("install-defaults", help="put the default models' weights in place")
    defaults.add_argument("--models-path", type=Path, default=Path("models"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.models_path.mkdir(parents=True, exist_ok=True)
    return 0 if asyncio.run(install_defaults(args.models_path)) else 1


if __name__ == "__main__":
    sys.exit(main())
