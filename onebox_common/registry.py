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
    """Reads every YAML when the folder changes (a name, size or mtime, or a model's weights appearing or
    going); a bad one is logged and skipped, so a typo in one file never takes the others down, and never
    reaches a worker."""

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
        files = model_files(self.models_path)
        stamp = (
            tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files),
            # one stat per model: weights installed or removed by hand are noticed without a YAML edit
            tuple(m.path.exists() for m in self._models.values()),
        )
        if stamp == self._stamp:
            return
        self._models = read_models(files, self.models_path)
        self._stamp = (stamp[0], tuple(m.path.exists() for m in self._models.values()))


def model_files(models_path: Path) -> list[Path]:
    """The YAMLs in one alphabetical order (.yaml and .yml together): the order that decides duplicates."""
    found = [*models_path.glob("*.yaml"), *models_path.glob("*.yml")]
    return sorted((f for f in found if f.is_file()), key=lambda f: f.name)


def read_models(files: list[Path], models_path: Path) -> dict[str, ModelConfig]:
    models: dict[str, ModelConfig] = {}
    sources: dict[str, Path] = {}
    for path in files:
        try:
            config = load_model_config(path, models_path)
        except ConfigError as error:
            log.error("skipping model config: %s", error)
            continue
        if config.name in models:
            log.error(
                "skipping %s: model name %r is already defined by %s, which is served (the first file in "
                "alphabetical order wins); rename one of them",
                path.name, config.name, sources[config.name].name,
            )  # fmt: skip
            continue
        if not config.path.exists():
            # listed all the same (the operator may be installing them now); a request gets a 404 saying so
            log.warning(
                "model %s: weights %s are missing (in %s; from %s)", config.name, config.file, models_path,
                path.name,
            )  # fmt: skip
        models[config.name] = config
        sources[config.name] = path
    return models
