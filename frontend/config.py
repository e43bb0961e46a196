"""The server's settings, parsed once from flags and env vars (frontend/cli.py). The model YAMLs are
onebox_common/model_config.py's, shared with the gallery."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    models_path: Path = Path("models")
    threads: int = 0  # 0: every core
    preload: tuple[str, ...] = ()
    max_body_bytes: int = 32 * 1024 * 1024
    shutdown_timeout: float = 30.0  # how long a SIGTERM lets running requests finish (frontend/drain.py)
    max_audio_seconds: float = 1800.0  # longer uploads, declared or decoded, are refused before transcribing
    stream_interval_ms: int = 0  # 0: stream every token as it comes (the CLI defaults to 20)
    worker_start_timeout: float = 60.0
    worker_load_timeout: float = 300.0
    worker_stop_grace: float = 3.0
    log_level: str = "INFO"
    runtime_dir: Path | None = None  # where worker sockets go; a fresh temp dir when None
    # the watchdog (frontend/workers/eviction.py decides, the manager acts); sizes in bytes, durations in
    # seconds
    memory_budget_bytes: int | None = None  # None: no budget (the CLI defaults it to 80% of RAM)
    memory_floor_bytes: int = 0  # evict idle workers when available memory falls below this
    max_active_backends: int = 0  # 0: no limit
    force_eviction_when_busy: bool = False
    watchdog_idle_timeout: float = 900.0  # 0: never
    watchdog_busy_timeout: float = 300.0  # no token or reply for this long: hung; 0: never
    watchdog_interval: float = 5.0
    busy_wait_timeout: float = 30.0  # how long a load waits for a busy worker to free room
    failure_backoff: float = 2.0  # first pause after repeated load failures; doubles, up to 5 minutes
    api_keys: tuple[str, ...] = ()  # empty: no key needed (loopback only, see frontend/security.py)
    cors_allow_origins: tuple[str, ...] = ()  # empty: no CORS headers; "*" allows any origin
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides this machine's own; "*": any
    allow_insecure_public_bind: bool = False
    # keys that may also use the operator routes (gallery, /backend/*, /metrics); once any is set, the
    # plain api_keys are for inference only
    admin_api_keys: tuple[str, ...] = ()
    public_url: str = ""  # the base of generated-image URLs; empty: the bind address (relative on 0.0.0.0)
    # hostile-input limits (README "Limits"; frontend/api/limits.py); 0 turns a count limit off
    max_choices_per_request: int = 64  # prompts x n of one text request
    max_tools: int = 128
    max_input_chars: int = 1_000_000  # tokenize content; embeddings and rerank texts, all together
    max_form_fields: int = 32
    max_form_text_bytes: int = 1024 * 1024  # every text field of one multipart form together
    body_read_timeout: float = 60.0  # seconds for a whole request body to arrive
    max_streams_per_client: int = 8  # concurrent SSE streams of one remote address
    stream_write_timeout: float = 30.0  # a streamed write blocked this long ends the stream
    # generated images served by URL (frontend/api/images/files.py); never inside the models path
    generated_path: Path = Path("generated")
    generated_max_age: float = 3600.0  # seconds a generated file is kept
    # the gallery: (name, index URL or path) pairs, empty for the built-in index; file:// sources only here
    galleries: tuple[tuple[str, str], ...] = ()
    gallery_file_root: Path | None = None
    # what a gallery download may reach and write (gallery/policy.py); off by default: the URL is a caller's
    allow_private_downloads: bool = False
    allow_http_downloads: bool = False
    max_download_bytes: int = 50 * 1000**3  # per model
    allow_unverified_installs: bool = False
    extra: dict = field(default_factory=dict)
