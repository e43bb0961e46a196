"""The models a server offers: the YAML files of the models directory, re-read when they change."""

from __future__ import annotations

import logging
from pathlib import Path

from onebox_common.model_config import ConfigError, ModelConfig, load_model_config

log = logging.getLogger("onebox.config")


class UnknownModel(LookupError):
    """No good YAML defines this model (none does, or its YAML is invalid and was skipped, with an error
    logged). The API turns this into OpenAI's 404 `model_not_found`."""

    def __init__(self, name: str, models_path: Path) -> None:
        super().__init__(f"no model named {name!r} in {models_path}")
        self.name = name


class ModelRegistry:
    """Reads every YAML when the folder changes (a name, size or mtime); a bad one is logged and skipped, so a
    typo in one file never takes the others down, and never reaches a worker."""

    def __init__(self, models_path: Path) -> None:
        self.models_path = models_path
        self._models: dict[str, ModelConfig] = {}
        self._stamp: tuple = ()

    def all(self) -> list[ModelConfig]:
        self._refresh()
        return sorted(self._models.values(), key=lambda m: m.name)

    def get(self, name: str) -> ModelConfig:
        self._refresh()
        try:
            return self._models[name]
        except KeyError:
            raise UnknownModel(name, self.models_path) from None

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
