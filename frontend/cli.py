"""The `onebox` command. argv and the environment are read here and nowhere else."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from importlib.metadata import version as package_version
from pathlib import Path

import psutil
from aiohttp import web

from frontend.app import create_app
from frontend.cli_client import add_client_parsers
from frontend.cli_client import main as client_main
from frontend.config import ServerConfig
from frontend.config_file import ConfigFileError, DefaultsHelpFormatter, config_file_words
from frontend.drain import install_signal_handlers
from frontend.security import RequestIdFilter, parse_api_keys, parse_origins, public_bind_refusal
from frontend.state import LISTENING, MANAGER
from gallery.cli import add_gallery_flags, add_models_parser
from gallery.cli import main as models_main
from onebox_common.units import parse_duration, parse_size

log = logging.getLogger("onebox")

SHUTDOWN_GRACE_SECONDS = 5.0  # for aiohttp's own last wait, after the drain (--shutdown-timeout) is over


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"ONEBOX_{name}", default)


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {address!r}")
    if int(port) > 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (0-65535)")
    return host.strip("[]") or "127.0.0.1", int(port)


def whole_number(text: str) -> int:
    """A count from a flag or its environment twin (argparse converts string defaults with this too)."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


def api_keys(spec: str) -> tuple[str, ...]:
    try:
        return parse_api_keys(spec)
    except (ValueError, OSError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onebox", description="Local AI models behind an OpenAI-compatible API"
    )
    parser.add_argument("--version", action="version", version=f"onebox {package_version('onebox')}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="serve the models in the models directory", formatter_class=DefaultsHelpFormatter
    )
    run.add_argument(
        "--config",
        default=env("CONFIG"),
        type=Path,
        metavar="FILE",
        help="a YAML file of run flags by their long names (address: 127.0.0.1:9000); a flag or its "
        "environment variable overrides the file (ONEBOX_CONFIG)",
    )
    add_serving_flags(run)
    add_duration_flags(run)
    add_output_flags(run)
    add_security_flags(run)
    add_limit_flags(run)
    add_watchdog_flags(run)
    add_gallery_flags(run, env)
    add_models_parser(commands, env)
    add_client_parsers(commands, env)
    return parser


def add_serving_flags(run: argparse.ArgumentParser) -> None:
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
        default=env("THREADS", "0"),
        type=whole_number,
        help="CPU threads per model, 0 for all cores (ONEBOX_THREADS)",
    )
    run.add_argument(
        "--log-level",
        default=env("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="the least important messages logged, by the server and its workers alike (ONEBOX_LOG_LEVEL)",
    )
    run.add_argument(
        "--preload",
        default=env("PRELOAD", ""),
        help="comma-separated models to load at start instead of on first use (ONEBOX_PRELOAD)",
    )
    run.add_argument(
        "--max-body-size",
        default=env("MAX_BODY_SIZE", str(32 * 1024 * 1024)),
        type=whole_number,
        help="largest request body in bytes (ONEBOX_MAX_BODY_SIZE)",
    )


def add_duration_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--shutdown-timeout",
        default=env("SHUTDOWN_TIMEOUT", "30s"),
        type=parse_duration,
        help="on SIGTERM or Ctrl-C, how long running requests may finish before they are stopped; a second "
        "signal stops them at once (ONEBOX_SHUTDOWN_TIMEOUT)",
    )
    run.add_argument(
        "--max-audio-seconds",
        default=env("MAX_AUDIO_SECONDS", "30m"),
        type=parse_duration,
        help="longest audio a transcription accepts, like 30m or 600 (ONEBOX_MAX_AUDIO_SECONDS): a small "
        "compressed file can hold hours of audio",
    )


def add_output_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--stream-interval-ms",
        default=env("STREAM_INTERVAL_MS", "20"),
        type=whole_number,
        help="stream at most one chunk per this many ms, the first token at once; 0: every token "
        "(ONEBOX_STREAM_INTERVAL_MS)",
    )
    run.add_argument(
        "--generated-path",
        default=env("GENERATED_PATH", "generated"),
        type=Path,
        help="folder for generated images served by URL, kept for an hour (ONEBOX_GENERATED_PATH)",
    )


def add_security_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--api-keys",
        default=env("API_KEYS", ""),
        type=api_keys,
        help="comma-separated API keys, or a file with one per line; clients send one as "
        "'Authorization: Bearer KEY' or 'x-api-key' (ONEBOX_API_KEYS)",
    )
    run.add_argument(
        "--admin-api-keys",
        default=env("ADMIN_API_KEYS", ""),
        type=api_keys,
        help="keys that may also use the gallery, /backend/* and /metrics, as a list or a file like "
        "--api-keys; once set, --api-keys are for inference only (ONEBOX_ADMIN_API_KEYS)",
    )
    run.add_argument(
        "--public-url",
        default=env("PUBLIC_URL", ""),
        help="the server's URL as clients reach it, like https://ai.example.com: the base of generated "
        "image URLs; default: this server's address, or a relative URL on 0.0.0.0 (ONEBOX_PUBLIC_URL)",
    )
    run.add_argument(
        "--cors-allow-origins",
        default=env("CORS_ALLOW_ORIGINS", ""),
        help="comma-separated origins browsers may call from, or * (ONEBOX_CORS_ALLOW_ORIGINS; default off)",
    )
    run.add_argument(
        "--allowed-hosts",
        default=env("ALLOWED_HOSTS", ""),
        help="comma-separated host names the server answers to besides localhost and loopback addresses, "
        "or * for any (ONEBOX_ALLOWED_HOSTS); guards a loopback server against DNS rebinding",
    )
    run.add_argument(
        "--allow-insecure-public-bind",
        action="store_true",
        default=env("ALLOW_INSECURE_PUBLIC_BIND", "") in {"1", "true", "yes"},
        help="listen on a non-loopback address without API keys (ONEBOX_ALLOW_INSECURE_PUBLIC_BIND)",
    )


def add_limit_flags(run: argparse.ArgumentParser) -> None:
    """What one request or client may cost (README "Limits"); a count of 0 turns its limit off."""
    size = functools.partial(parse_size, total=0)
    flags = [
        ("--max-choices-per-request", "MAX_CHOICES_PER_REQUEST", "64", whole_number,
         "most generations one text request may start: prompts x n"),
        ("--max-tools", "MAX_TOOLS", "128", whole_number, "most tools one chat request may declare"),
        ("--max-input-chars", "MAX_INPUT_CHARS", "1000000", whole_number,
         "most characters /v1/tokenize takes, and /v1/embeddings and /v1/rerank take all together"),
        ("--max-form-fields", "MAX_FORM_FIELDS", "32", whole_number,
         "most text fields of one multipart upload"),
        ("--max-form-text-size", "MAX_FORM_TEXT_SIZE", "1MiB", size,
         "the text fields of one multipart upload together, like 1MiB"),
        ("--body-read-timeout", "BODY_READ_TIMEOUT", "60s", parse_duration,
         "how long a whole request body may take to arrive (0: no limit)"),
        ("--max-streams-per-client", "MAX_STREAMS_PER_CLIENT", "8", whole_number,
         "most streamed (SSE) requests one client address may have open at once"),
        ("--stream-write-timeout", "STREAM_WRITE_TIMEOUT", "30s", parse_duration,
         "end a stream, and its generation, when its client reads nothing for this long (0: never)"),
    ]  # fmt: skip
    for flag, name, default, kind, help_text in flags:
        run.add_argument(flag, default=env(name, default), type=kind, help=f"{help_text} (ONEBOX_{name})")


def add_watchdog_flags(run: argparse.ArgumentParser) -> None:
    total = psutil.virtual_memory().total
    size = functools.partial(parse_size, total=total)
    flags = [
        ("--memory-budget", "MEMORY_BUDGET", "80%", size,
         "memory all workers together may use: bytes like 12GiB, or a share of RAM like 80%%"),
        ("--memory-floor", "MEMORY_FLOOR", "5%", size,
         "evict idle workers when the machine's available memory falls below this (0 to turn off)"),
        ("--max-active-backends", "MAX_ACTIVE_BACKENDS", "0", int,
         "most workers at once, least recently used evicted beyond it (0: no limit)"),
        ("--watchdog-idle-timeout", "WATCHDOG_IDLE_TIMEOUT", "15m", parse_duration,
         "stop a worker with no request for this long, like 15m or 30s (0: never)"),
        ("--watchdog-busy-timeout", "WATCHDOG_BUSY_TIMEOUT", "5m", parse_duration,
         "kill a worker that made no progress (no token, no reply) on a request for this long (0: never)"),
    ]  # fmt: skip
    for flag, name, default, kind, help_text in flags:
        run.add_argument(flag, default=env(name, default), type=kind, help=f"{help_text} (ONEBOX_{name})")
    run.add_argument(
        "--force-eviction-when-busy",
        action="store_true",
        default=env("FORCE_EVICTION_WHEN_BUSY", "") in {"1", "true", "yes"},
        help="let the budget and the floor evict busy workers too (ONEBOX_FORCE_EVICTION_WHEN_BUSY)",
    )  # fmt: skip


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    host, port = args.address
    return ServerConfig(
        host=host,
        port=port,
        models_path=args.models_path,
        threads=args.threads,
        preload=tuple(name.strip() for name in args.preload.split(",") if name.strip()),
        max_body_bytes=args.max_body_size,
        max_audio_seconds=args.max_audio_seconds,
        shutdown_timeout=args.shutdown_timeout,
        stream_interval_ms=args.stream_interval_ms,
        log_level=args.log_level,
        api_keys=args.api_keys,
        cors_allow_origins=parse_origins(args.cors_allow_origins),
        allowed_hosts=tuple(h.strip().lower() for h in args.allowed_hosts.split(",") if h.strip()),
        allow_insecure_public_bind=args.allow_insecure_public_bind,
        admin_api_keys=args.admin_api_keys,
        public_url=args.public_url,
        max_choices_per_request=args.max_choices_per_request,
        max_tools=args.max_tools,
        max_input_chars=args.max_input_chars,
        max_form_fields=args.max_form_fields,
        max_form_text_bytes=args.max_form_text_size,
        body_read_timeout=args.body_read_timeout,
        max_streams_per_client=args.max_streams_per_client,
        stream_write_timeout=args.stream_write_timeout,
        memory_budget_bytes=args.memory_budget,
        memory_floor_bytes=args.memory_floor,
        max_active_backends=args.max_active_backends,
        force_eviction_when_busy=args.force_eviction_when_busy,
        watchdog_idle_timeout=args.watchdog_idle_timeout,
        watchdog_busy_timeout=args.watchdog_busy_timeout,
        galleries=tuple((g.name, g.location) for g in args.galleries),
        gallery_file_root=args.gallery_file_root,
        allow_private_downloads=args.allow_private_downloads,
        allow_http_downloads=args.allow_http_downloads,
        max_download_bytes=args.max_download_size,
        allow_unverified_installs=args.allow_unverified_installs,
        generated_path=args.generated_path,
    )


async def handle_signals(app: web.Application, timeout: float) -> None:
    install_signal_handlers(app, timeout, app[MANAGER].stop_all)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with `onebox run --config FILE`'s settings put in before the real flags (so that
    the real ones win), leaving out those whose environment variable is set (so that it wins too)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "run" or args.config is None:
        return args
    words = list(sys.argv[1:] if argv is None else argv)
    at = words.index("run") + 1
    try:
        from_file = config_file_words(
            args.config, subcommand(parser, "run"), lambda dest: f"ONEBOX_{dest.upper()}" in os.environ
        )
    except ConfigFileError as error:
        parser.exit(2, f"onebox run: error: {error}\n")
    return parser.parse_args([*words[:at], *from_file, *words[at:]])


def subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "models":
        return models_main(args)
    if args.command in {"ps", "chat"}:
        return client_main(args)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
    config = config_from_args(args)
    if refusal := public_bind_refusal(config):
        log.error("%s", refusal)
        return 2
    if not config.models_path.is_dir():
        log.error("models path %s is not a folder", config.models_path)
        return 2
    log.info("starting: models from %s, listening on %s:%d", config.models_path, config.host, config.port)
    if config.api_keys or config.admin_api_keys:
        log.info(
            "API keys are on: %d key(s), %d admin key(s); health checks stay open",
            len(config.api_keys),
            len(config.admin_api_keys),
        )
    app = create_app(config)
    app.on_startup.append(functools.partial(handle_signals, timeout=config.shutdown_timeout))
    try:
        web.run_app(
            app,
            host=config.host,
            port=config.port,
            # a client that disconnects cancels its handler, and with it the worker's generation
            handler_cancellation=True,
            access_log=logging.getLogger("onebox.access"),
            access_log_format='%a "%r" %s %b %Tfs request_id=%{X-Request-ID}o',
            # aiohttp calls this once every socket listens: the moment the ready line may be logged
            print=lambda _banner: app[LISTENING].set(),
            # SIGINT/SIGTERM drain first (frontend/drain.py); by the time aiohttp shuts down, nothing runs
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        )
    except OSError as error:
        log.error("cannot listen on %s:%d: %s", config.host, config.port, error.strerror or error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
