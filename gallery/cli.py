"""`onebox models available|install NAME|list|remove NAME`: the gallery from a shell, no server needed.

Installs write into the models directory; a running server picks a new YAML up without a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from gallery.index import GalleryError, GallerySource, parse_galleries
from gallery.installer import Installer
from gallery.jobs import Job, Phase
from onebox_common.registry import ModelRegistry

log = logging.getLogger("onebox.gallery")

Env = Callable[[str, str], str | None]
BAR = 30


def add_models_parser(commands: argparse._SubParsersAction, env: Env) -> None:
    models = commands.add_parser("models", help="install, list and remove models (the gallery)")
    models.add_argument(
        "--models-path",
        default=env("MODELS_PATH", "models"),
        type=Path,
        help="folder of model YAMLs and weights (ONEBOX_MODELS_PATH)",
    )
    add_gallery_flags(models, env)
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser("available", help="what the galleries offer")
    install = actions.add_parser("install", help="install a gallery entry (NAME or gallery@NAME)")
    install.add_argument("name")
    install.add_argument("--as", dest="as_name", help="install under another model name")
    actions.add_parser("list", help="the installed models")
    remove = actions.add_parser("remove", help="delete a model's YAML and its folder")
    remove.add_argument("name")  # fmt: skip


def add_gallery_flags(parser: argparse.ArgumentParser, env: Env) -> None:
    parser.add_argument(
        "--galleries",
        default=env("GALLERIES", ""),
        type=galleries_arg,
        help="comma-separated name=url_or_path gallery indexes; default: the built-in one (ONEBOX_GALLERIES)",
    )
    parser.add_argument(
        "--gallery-file-root",
        default=env("GALLERY_FILE_ROOT", "") or None,
        type=Path,
        help="the one folder file:// sources read from (ONEBOX_GALLERY_FILE_ROOT)",
    )


def galleries_arg(spec: str) -> tuple[GallerySource, ...]:
    try:
        return parse_galleries(spec)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.action == "list":
        return list_installed(args.models_path)
    args.models_path.mkdir(parents=True, exist_ok=True)
    installer = Installer(args.models_path, args.galleries, args.gallery_file_root)
    try:
        return asyncio.run(run_action(installer, args))
    except GalleryError as error:
        log.error("%s", error)
        return 1


async def run_action(installer: Installer, args: argparse.Namespace) -> int:
    async with installer:
        if args.action == "available":
            for item in await installer.available():
                mark = "installed" if item["installed"] else ""
                # the licence last: it is the one column of any length
                line = f"{item['id']:<40} {item['backend']:<10} {item['size']:>8}  {mark:<9}"
                line += f"  {item['license']}"
                sys.stdout.write(line.rstrip() + "\n")
            return 0
        if args.action == "remove":
            installer.remove(args.name)
            sys.stdout.write(f"removed {args.name}\n")
            return 0
        gallery, entry = await installer.find(args.name)
        job = installer.apply(entry, f"{gallery}@{entry.name}", args.as_name)
        await show_progress(job, sys.stderr)
        if job.phase is not Phase.DONE:
            log.error("installing %s failed: %s", job.model, job.error)
            return 1
        sys.stdout.write(f"installed {job.model} in {installer.models_path}\n")
        return 0


async def show_progress(job: Job, out: TextIO) -> None:
    assert job.task is not None
    while True:
        done, _ = await asyncio.wait([job.task], timeout=0.2)
        out.write("\r" + progress_line(job))
        out.flush()
        if done:
            out.write("\n")
            return


def progress_line(job: Job) -> str:
    percent = job.percent()
    megabytes = f"{job.bytes_done / 1e6:.1f}" + (f"/{job.total / 1e6:.1f}" if job.total else "") + " MB"
    if percent is None:
        return f"{job.model} {megabytes} {job.phase.value}"
    filled = int(BAR * percent / 100)
    return f"{job.model} [{'#' * filled}{'.' * (BAR - filled)}] {percent:5.1f}% {megabytes} {job.phase.value}"


def list_installed(models_path: Path) -> int:
    if not models_path.is_dir():
        log.error("models path %s is not a folder", models_path)
        return 2
    for model in ModelRegistry(models_path).all():
        sys.stdout.write(f"{model.name:<40} {model.backend:<12} {model.file}\n")
    return 0
