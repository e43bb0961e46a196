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
from gallery.policy import DEFAULT_MAX_BYTES, DownloadPolicy
from onebox_common.registry import ModelRegistry
from onebox_common.units import format_bytes, parse_size

log = logging.getLogger("onebox.gallery")

Env = Callable[[str, str], str | None]
BAR = 30
TRUE = {"1", "true", "yes"}


def add_models_parser(commands: argparse._SubParsersAction, env: Env) -> None:
    models = commands.add_parser("models", help="install, list and remove models (the gallery)")
    add_common_flags(models, env)
    actions = models.add_subparsers(dest="action", required=True)
    available = actions.add_parser("available", help="what the galleries offer")
    install = actions.add_parser("install", help="install a gallery entry (NAME or gallery@NAME)")
    install.add_argument("name")
    install.add_argument("--as", dest="as_name", help="install under another model name")
    listed = actions.add_parser("list", help="the installed models")
    remove = actions.add_parser("remove", help="delete a model's YAML and its folder")
    remove.add_argument("name")
    for action in (available, install, listed, remove):
        # the same flags after the action (`onebox models list --models-path X`); SUPPRESS keeps a value
        # given before the action when none is given after it
        add_common_flags(action, env, suppress=True)


def add_common_flags(parser: argparse.ArgumentParser, env: Env, suppress: bool = False) -> None:
    parser.add_argument(
        "--models-path",
        default=argparse.SUPPRESS if suppress else env("MODELS_PATH", "models"),
        type=Path,
        help="folder of model YAMLs and weights (ONEBOX_MODELS_PATH)",
    )
    add_gallery_flags(parser, env, suppress)


def add_gallery_flags(parser: argparse.ArgumentParser, env: Env, suppress: bool = False) -> None:
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--galleries",
        default=default(env("GALLERIES", "")),
        type=galleries_arg,
        help="comma-separated name=url_or_path gallery indexes; default: the built-in one (ONEBOX_GALLERIES)",
    )
    parser.add_argument(
        "--gallery-file-root",
        default=default(env("GALLERY_FILE_ROOT", "") or None),
        type=Path,
        help="the one folder file:// sources read from (ONEBOX_GALLERY_FILE_ROOT)",
    )
    switches = (
        ("--allow-private-downloads", "ALLOW_PRIVATE_DOWNLOADS",
         "let downloads reach loopback, private and link-local addresses (a local mirror)"),
        ("--allow-http-downloads", "ALLOW_HTTP_DOWNLOADS", "let downloads use plain http://"),
        ("--allow-unverified-installs", "ALLOW_UNVERIFIED_INSTALLS", "install files that have no sha256"),
    )  # fmt: skip
    for flag, name, text in switches:
        on = (env(name, "") or "").lower() in TRUE
        parser.add_argument(flag, action="store_true", default=default(on), help=f"{text} (ONEBOX_{name})")
    parser.add_argument(
        "--max-download-size",
        default=default(env("MAX_DOWNLOAD_SIZE", str(DEFAULT_MAX_BYTES))),
        type=size_arg,
        help="the most one model's files may weigh, e.g. 50GB (ONEBOX_MAX_DOWNLOAD_SIZE)",
    )


def galleries_arg(spec: str) -> tuple[GallerySource, ...]:
    try:
        return parse_galleries(spec)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def size_arg(text: str) -> int:
    try:
        size = parse_size(text, 0)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if text.strip().endswith("%") or size <= 0:
        raise argparse.ArgumentTypeError(f"expected a size like 50GB, got {text!r}")
    return size


def policy_from_args(args: argparse.Namespace) -> DownloadPolicy:
    return DownloadPolicy(
        allow_private=args.allow_private_downloads,
        allow_http=args.allow_http_downloads,
        max_bytes=args.max_download_size,
        allow_unverified=args.allow_unverified_installs,
    )


class Terminal:
    """stderr, shared by a progress bar redrawn in place (after `\\r`) and messages on lines of their own."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.bar_width = 0  # the bar on the current line, 0 when the line is clear

    def bar(self, text: str) -> None:
        self.out.write("\r" + text.ljust(self.bar_width))  # pads over a longer bar drawn before
        self.out.flush()
        self.bar_width = len(text)

    def end_bar(self) -> None:
        if self.bar_width:
            self.out.write("\n")
            self.bar_width = 0

    def message(self, text: str) -> None:
        self.end_bar()
        self.out.write(text + "\n")
        self.out.flush()


class TerminalHandler(logging.Handler):
    def __init__(self, terminal: Terminal) -> None:
        super().__init__()
        self.terminal = terminal

    def emit(self, record: logging.LogRecord) -> None:
        self.terminal.message(self.format(record))


def main(args: argparse.Namespace) -> int:
    terminal = Terminal(sys.stderr)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[TerminalHandler(terminal)])
    if args.action == "list":
        return list_installed(args.models_path)
    args.models_path.mkdir(parents=True, exist_ok=True)
    installer = Installer(args.models_path, args.galleries, args.gallery_file_root, policy_from_args(args))
    try:
        return asyncio.run(run_action(installer, args, terminal))
    except GalleryError as error:
        log.error("%s", error)
        return 1


async def run_action(installer: Installer, args: argparse.Namespace, terminal: Terminal) -> int:
    async with installer:
        if args.action == "available":
            show_available(await installer.available())
            return 0
        if args.action == "remove":
            installer.remove(args.name)
            sys.stdout.write(f"removed {args.name}\n")
            return 0
        gallery, entry = await installer.find(args.name)
        job = installer.apply(entry, f"{gallery}@{entry.name}", args.as_name)
        await show_progress(job, terminal)
        if job.phase is not Phase.DONE:
            return 1  # the installer has logged why, once
        sys.stdout.write(f"installed {job.model} in {installer.models_path}\n")
        return 0


async def show_progress(job: Job, terminal: Terminal) -> None:
    assert job.task is not None
    while True:
        done, _ = await asyncio.wait([job.task], timeout=0.2)
        terminal.bar(progress_line(job))
        if done:
            terminal.end_bar()
            return


def progress_line(job: Job) -> str:
    percent = job.percent()
    megabytes = f"{job.bytes_done / 1e6:.1f}" + (f"/{job.total / 1e6:.1f}" if job.total else "") + " MB"
    if percent is None:
        return f"{job.model} {megabytes} {job.phase.value}"
    filled = int(BAR * percent / 100)
    return f"{job.model} [{'#' * filled}{'.' * (BAR - filled)}] {percent:5.1f}% {megabytes} {job.phase.value}"


def show_available(items: list[dict]) -> None:
    rows = [("ID", "BACKEND", "SIZE", "INSTALLED", "LICENSE")]
    for item in items:
        size = item["size"] or (format_bytes(item["size_bytes"]) if item["size_bytes"] else "-")
        rows.append(
            (item["id"], item["backend"] or "-", size, "yes" if item["installed"] else "no", item["license"])
        )
    write_table(rows)


def list_installed(models_path: Path) -> int:
    if not models_path.is_dir():
        log.error("models path %s is not a folder", models_path)
        return 2
    rows = [("NAME", "BACKEND", "SIZE", "WEIGHTS", "FILE")]
    for model in ModelRegistry(models_path).all():
        size = disk_size(models_path / model.file)
        present = "present" if size is not None else "missing"
        rows.append((model.name, model.backend, format_bytes(size) if size else "-", present, model.file))
    write_table(rows)
    return 0


def disk_size(path: Path) -> int | None:
    """Bytes of a weights file or folder; None when it is not there."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return None


def write_table(rows: list[tuple[str, ...]]) -> None:
    """Columns as wide as their longest cell; the last one (licence, file) is left ragged."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)] + [row[-1]]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")
