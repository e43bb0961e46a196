"""One models/<name>.yaml, parsed and validated once into a frozen ModelConfig; an error names the file and
the key. Shared by the front end (which serves the model) and the gallery (which writes the YAML)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from onebox_common.names import MODEL_NAME
from onebox_common.options import OPTIONS, BackendOptions, problem
from onebox_common.units import parse_duration

BackendKind = Literal["llama-cpp", "embeddings", "whisper", "tts", "diffusion"]


class ConfigError(Exception):
    """A model YAML that cannot be served; the message names the file and the key."""


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
    # The backend's options as the YAML wrote them, checked against OPTIONS[backend] (options.py). Kept as a
    # plain mapping because it travels to the worker as JSON (LoadModelRequest.options_json), where the same
    # typed model parses it; read them here through `backend_options`.
    options: dict[str, Any] = Field(default_factory=dict)
    pinned: bool = False  # never evicted
    idle_timeout: float | None = None  # seconds (or "15m"); None: the server's --watchdog-idle-timeout
    # resolved at load time, not written in the YAML
    path: Path = Path()

    _backend_options: BackendOptions = PrivateAttr()

    @field_validator("idle_timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return None if value is None else parse_duration(value)  # type: ignore[arg-type]

    @field_validator("options")
    @classmethod
    def _known_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        backend = info.data.get("backend")
        if backend is None:  # the backend itself is wrong, and is the error reported
            return value
        # a ValidationError raised here is reported under `options.<key>`
        return OPTIONS[backend].model_validate(value).model_dump(mode="json", exclude_unset=True)

    def model_post_init(self, context: Any) -> None:
        self._backend_options = OPTIONS[self.backend].model_validate(self.options)

    @property
    def backend_options(self) -> BackendOptions:
        """The options, typed for this backend (an instance of OPTIONS[self.backend]), defaults filled in."""
        return self._backend_options


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
        raise ConfigError(f"{yaml_path}: {problem(error)}") from error
    return config.model_copy(update={"path": resolve_inside(models_path, config.file, yaml_path)})


def resolve_inside(models_path: Path, relative: str, source: Path) -> Path:
    """The weights' path, which must name something inside the models directory. Checked on the path as
    written, not on what it resolves to: a symlink inside the directory to weights shared with another tool
    (an Ollama or LM Studio folder, the Hugging Face cache) is the operator's choice and is followed, while
    the YAML itself (which the gallery writes from user input) can never reach out with `..` or `/abs`."""
    root = models_path.resolve()
    target = Path(os.path.normpath(root / relative))
    if Path(relative).is_absolute() or not target.is_relative_to(root):
        raise ConfigError(f"{source}: key 'file': {relative!r} points outside the models directory")
    return target
