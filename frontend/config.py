"""Server settings and model configs, each parsed and validated once."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from frontend.errors import InvalidRequest, ModelNotFound
from frontend.units import parse_duration

log = logging.getLogger("onebox.config")

# A model name is a lookup key, never a path: no separators, no "..", no control characters.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")

BackendKind = Literal["llama-cpp", "embeddings", "whisper", "tts", "diffusion"]


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    models_path: Path = Path("models")
    threads: int = 0  # 0: every core
    preload: tuple[str, ...] = ()
    max_body_bytes: int = 32 * 1024 * 1024
    stream_interval_ms: int = 0  # 0: stream every token as it comes (the CLI defaults to 20)
    worker_start_timeout: float = 60.0
    worker_load_timeout: float = 300.0
    worker_stop_grace: float = 3.0
    log_level: str = "INFO"
    runtime_dir: Path | None = None  # where worker sockets go; a fresh temp dir when None
    # the watchdog (frontend/eviction.py decides, the manager acts); sizes in bytes, durations in seconds
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
    allow_insecure_public_bind: bool = False
    # generated images served by URL (frontend/generated_files.py); never inside the models path
    generated_path: Path = Path("generated")
    generated_max_age: float = 3600.0  # seconds a generated file is kept
    # the gallery: (name, index URL or path) pairs, empty for the built-in index; file:// sources only here
    galleries: tuple[tuple[str, str], ...] = ()
    gallery_file_root: Path | None = None
    extra: dict = field(default_factory=dict)


class SamplingDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)
    max_tokens: int | None = Field(None, ge=1)


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chat: str | None = None
    # False: ignore the template stored in the weights; chat then needs `chat` above.
    use_model_template: bool = True


class ModelConfig(BaseModel):
    """One models/<name>.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=rf"^{MODEL_NAME.pattern}$")  # pydantic's (Rust) regex: $ is the very end
    backend: BackendKind
    file: str = Field(min_length=1, description="weights file or folder, relative to the models path")
    description: str = ""
    context_size: int = Field(2048, ge=16)
    parameters: SamplingDefaults = SamplingDefaults()
    template: Template = Template()
    embeddings: bool = False
    options: dict = Field(default_factory=dict)
    pinned: bool = False  # never evicted
    idle_timeout: float | None = None  # seconds (or "15m"); None: the server's --watchdog-idle-timeout
    # resolved at load time, not written in the YAML
    path: Path = Path()

    @field_validator("idle_timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return None if value is None else parse_duration(value)  # type: ignore[arg-type]


class ConfigError(Exception):
    pass


def load_model_config(yaml_path: Path, models_path: Path) -> ModelConfig:
    try:
        raw = yaml.safe_load(yaml_path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{yaml_path}: cannot read: {error}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"{yaml_path}: expected a mapping at the top level")
    raw.pop("path", None)
    try:
        config = ModelConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{yaml_path}: key {key!r}: {first['msg']}") from error
    return config.model_copy(update={"path": resolve_inside(models_path, config.file, yaml_path)})


def resolve_inside(models_path: Path, relative: str, source: Path) -> Path:
    root = models_path.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ConfigError(f"{source}: key 'file': {relative!r} points outside the models directory")
    return target


class ModelRegistry:
    """The models a server offers: the YAML files in the models directory, re-read when they change."""

    def __init__(self, models_path: Path) -> None:
        self.models_path = models_path
        self._models: dict[str, ModelConfig] = {}
        self._stamp: tuple = ()

    def all(self) -> list[ModelConfig]:
        self._refresh()
        return sorted(self._models.values(), key=lambda m: m.name)

    def get(self, name: str) -> ModelConfig:
        check_model_name(name)
        self._refresh()
        try:
            return self._models[name]
        except KeyError:
            raise ModelNotFound(
                f"the model {name!r} does not exist; GET /v1/models lists the models this server offers",
                param="model",
            ) from None

    def _refresh(self) -> None:
        files = sorted(self.models_path.glob("*.yaml")) + sorted(self.models_path.glob("*.yml"))
        stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())
        if stamp == self._stamp:
            return
        models: dict[str, ModelConfig] = {}
        for path in files:
            try:
                config = load_model_config(path, self.models_path)
            except ConfigError as error:
                log.error("skipping model config: %s", error)
                continue
            if config.name in models:
                log.error("skipping %s: model name %r is already defined", path, config.name)
                continue
            models[config.name] = config
        self._models, self._stamp = models, stamp


def check_model_name(name: str) -> None:
    if not MODEL_NAME.fullmatch(name):
        raise InvalidRequest(
            "invalid model name: use letters, digits and . _ : @ + - (a model name is not a path)",
            param="model",
            code="invalid_model_name",
        )
