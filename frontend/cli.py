"""The `onebox` command. argv and the environment are read here and nowhere else."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from aiohttp import web

from frontend.app import create_app
from frontend.config import ServerConfig

log = logging.getLogger("onebox")


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"ONEBOX_{name}", default)


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onebox", description="Local AI models behind an OpenAI-compatible API"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve the models in the models directory")
    run.add_argument(
        "--address",
        default=env("ADDRESS", "127.0.0.1:8080"),
        type=parse_address,
        help="HOST:PORT to listen on (ONEBOX_ADDRESS)",
    )
    run.add_argument(
        "--models-path",
        default=env("MODELS_PATH", "models"),
        type=Path,
        help="folder of model YAMLs and weights (ONEBOX_MODELS_PATH)",
    )
    run.add_argument(
        "--threads",
        default=int(env("THREADS", "0") or 0),
        type=int,
        help="CPU threads per model, 0 for all cores (ONEBOX_THREADS)",
    )
    run.add_argument(
        "--log-level",
        default=env("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="(ONEBOX_LOG_LEVEL)",
    )
    run.add_argument(
        "--preload",
        default=env("PRELOAD", ""),
        help="comma-separated models to load at start instead of on first use (ONEBOX_PRELOAD)",
    )
    run.add_argument(
        "--max-body-size",
        default=int(env("MAX_BODY_SIZE", str(32 * 1024 * 1024)) or 0),
        type=int,
        help="largest request body in bytes (ONEBOX_MAX_BODY_SIZE)",
    )
    return parser  # fmt: skip


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    host, port = args.address
    return ServerConfig(
        host=host,
        port=port,
        models_path=args.models_path,
        threads=args.threads,
        preload=tuple(name.strip() for name in args.preload.split(",") if name.strip()),
        max_body_bytes=args.max_body_size,
        log_level=args.log_level,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    if not config.models_path.is_dir():
        log.error("models path %s is not a folder", config.models_path)
        return 2
    log.info("serving models from %s on http://%s:%d", config.models_path, config.host, config.port)
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        # a client that disconnects cancels its handler, and with it the worker's generation
        handler_cancellation=True,
        access_log=logging.getLogger("onebox.access"),
        print=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
