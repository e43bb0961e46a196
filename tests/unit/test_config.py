"""onebox_common/model_config.py and registry.py: model YAMLs are validated once, and model names are lookup
keys, never paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from frontend.api.parsing import model_name
from frontend.errors import InvalidRequest
from onebox_common.model_config import ConfigError, load_model_config
from onebox_common.registry import ModelRegistry, UnknownModel


def write_yaml(folder: Path, filename: str, data: object) -> Path:
    path = folder / filename
    path.write_text(yaml.safe_dump(data))
    return path


def valid(name: str = "tiny", **fields: object) -> dict:
    return {"name": name, "backend": "llama-cpp", "file": f"{name}.gguf", **fields}


def test_valid_yaml_resolves_the_weights_path_inside_the_models_folder(models_path: Path) -> None:
    config = load_model_config(write_yaml(models_path, "tiny.yaml", valid()), models_path)
    assert config.name == "tiny"
    assert config.path == (models_path / "tiny.gguf").resolve()


def test_bad_value_error_names_the_file_and_the_key(models_path: Path) -> None:
    path = write_yaml(models_path, "tiny.yaml", valid(context_size="big"))
    with pytest.raises(ConfigError, match=r"tiny\.yaml: key 'context_size'"):
        load_model_config(path, models_path)


def test_bad_nested_value_error_names_the_dotted_key(models_path: Path) -> None:
    path = write_yaml(models_path, "tiny.yaml", valid(parameters={"temperature": 9}))
    with pytest.raises(ConfigError, match=r"tiny\.yaml: key 'parameters\.temperature'"):
        load_model_config(path, models_path)


def test_missing_key_error_names_the_key(models_path: Path) -> None:
    data = valid()
    del data["file"]
    with pytest.raises(ConfigError, match=r"tiny\.yaml: key 'file'"):
        load_model_config(write_yaml(models_path, "tiny.yaml", data), models_path)


def test_unknown_key_is_refused(models_path: Path) -> None:
    path = write_yaml(models_path, "tiny.yaml", valid(flavour="mint"))
    with pytest.raises(ConfigError, match="key 'flavour'"):
        load_model_config(path, models_path)


def test_yaml_that_is_not_a_mapping_is_refused_naming_the_file(models_path: Path) -> None:
    path = write_yaml(models_path, "list.yaml", ["a", "b"])
    with pytest.raises(ConfigError, match=r"list\.yaml"):
        load_model_config(path, models_path)


def test_unparsable_yaml_is_refused_naming_the_file(models_path: Path) -> None:
    path = models_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        load_model_config(path, models_path)


@pytest.mark.parametrize("outside", ["../secret.gguf", "/etc/passwd", "sub/../../secret.gguf"])
def test_weights_file_outside_the_models_folder_is_refused(models_path: Path, outside: str) -> None:
    path = write_yaml(models_path, "tiny.yaml", valid(file=outside))
    with pytest.raises(ConfigError, match=r"key 'file'.*outside the models directory"):
        load_model_config(path, models_path)


def test_weights_symlink_inside_the_models_folder_is_followed(models_path: Path) -> None:
    # weights shared with another tool (Ollama, LM Studio, the Hugging Face cache) by a link the operator made
    (models_path.parent / "elsewhere.gguf").write_bytes(b"x")
    (models_path / "link.gguf").symlink_to(models_path.parent / "elsewhere.gguf")
    path = write_yaml(models_path, "tiny.yaml", valid(file="link.gguf"))
    config = load_model_config(path, models_path)
    assert config.path == models_path.resolve() / "link.gguf"
    assert config.path.read_bytes() == b"x"


def test_yaml_cannot_set_the_resolved_path(models_path: Path) -> None:
    config = load_model_config(write_yaml(models_path, "t.yaml", valid(path="/etc/passwd")), models_path)
    assert config.path == (models_path / "tiny.gguf").resolve()


def test_registry_skips_bad_yamls_and_keeps_good_ones(models_path: Path) -> None:
    write_yaml(models_path, "good.yaml", valid("good"))
    write_yaml(models_path, "bad.yaml", valid("bad", context_size=-1))
    (models_path / "garbage.yaml").write_text(":\n  - [")
    assert [m.name for m in ModelRegistry(models_path).all()] == ["good"]


def test_registry_skips_a_second_yaml_with_the_same_name(models_path: Path) -> None:
    write_yaml(models_path, "a.yaml", valid("twin", description="first"))
    write_yaml(models_path, "b.yaml", valid("twin", description="second"))
    models = ModelRegistry(models_path).all()
    assert [(m.name, m.description) for m in models] == [("twin", "first")]


def test_registry_picks_up_a_new_yaml_without_restart(models_path: Path) -> None:
    registry = ModelRegistry(models_path)
    assert registry.all() == []
    write_yaml(models_path, "new.yml", valid("new"))
    assert registry.get("new").name == "new"


def test_registry_forgets_a_deleted_yaml(models_path: Path) -> None:
    path = write_yaml(models_path, "gone.yaml", valid("gone"))
    registry = ModelRegistry(models_path)
    assert registry.get("gone")
    path.unlink()
    with pytest.raises(UnknownModel):
        registry.get("gone")


def test_registry_picks_up_an_edited_yaml(models_path: Path) -> None:
    path = write_yaml(models_path, "m.yaml", valid("m", context_size=512))
    registry = ModelRegistry(models_path)
    assert registry.get("m").context_size == 512
    write_yaml(models_path, "m.yaml", valid("m", context_size=1024))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert registry.get("m").context_size == 1024


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/passwd", "a\x00b", "..", "a/b", "", " spaced", "x" * 200],
    ids=["dotdot", "absolute", "nul", "bare-dotdot", "slash", "empty", "leading-space", "too-long"],
)
def test_model_name_that_is_not_a_plain_name_is_a_400_at_the_api_edge(name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        model_name(name)
    assert caught.value.status == 400
    assert caught.value.param == "model"


def test_model_name_that_is_a_path_is_only_a_lookup_key_to_the_registry(models_path: Path) -> None:
    (models_path.parent / "passwd.yaml").write_text(yaml.safe_dump(valid("passwd")))
    with pytest.raises(UnknownModel):
        ModelRegistry(models_path).get("../passwd")


def test_unknown_well_formed_model_name_is_unknown_model(models_path: Path) -> None:
    with pytest.raises(UnknownModel) as caught:
        ModelRegistry(models_path).get("no-such-model")
    assert caught.value.name == "no-such-model"


def test_model_name_with_a_trailing_newline_is_a_400(models_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        model_name("tiny\n")
