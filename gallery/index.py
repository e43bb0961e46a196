"""Gallery indexes: what can be installed, parsed and validated once.

An index is a YAML list of entries. Each entry names its files (a `uri`, or `parts` to concatenate, and a
sha256) and the model config to write as models/<name>.yaml once they are in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from onebox_common.names import MODEL_NAME
from onebox_common.options import problem


class GalleryError(Exception):
    """An install cannot go on; the message says why, for a user."""


class EntryNotFound(GalleryError):
    pass


class InvalidEntry(GalleryError):
    pass


class AlreadyInstalled(GalleryError):
    pass


BUILTIN = "onebox"
SHA256 = re.compile(r"[0-9a-f]{64}")


def check_filename(filename: str) -> str:
    """A file's place inside its model's folder: relative, plain names, never `..` (no escape possible)."""
    path = PurePosixPath(filename)
    parts = filename.split("/")
    bad = (
        not filename
        or path.is_absolute()
        or "\\" in filename
        or "\0" in filename
        or any(part in {"", ".", ".."} for part in parts)
        or filename.endswith(".partial")
    )
    if bad:
        raise ValueError(f"unsafe file name {filename!r}: use a relative name without '..' or '\\'")
    return filename


class FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str
    uri: str | None = None
    parts: tuple[str, ...] = ()  # several sources, concatenated in order
    sha256: str | None = Field(None, pattern=SHA256.pattern)
    size: int | None = Field(None, ge=0)  # bytes: the free-disk check and the progress total

    @field_validator("filename")
    @classmethod
    def _safe(cls, filename: str) -> str:
        return check_filename(filename)

    @model_validator(mode="after")
    def _one_source(self) -> FileSpec:
        if (self.uri is None) == (not self.parts):
            raise ValueError("give either 'uri' or 'parts'")
        return self

    @property
    def uris(self) -> tuple[str, ...]:
        return (self.uri,) if self.uri else self.parts


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=rf"^{MODEL_NAME.pattern}$")
    description: str = ""
    license: str = ""
    tags: tuple[str, ...] = ()
    backend: str = ""
    size: str = ""  # for people: "469 MB"
    urls: tuple[str, ...] = ()  # model card, upstream
    default: bool = False  # installed by `make models`
    files: tuple[FileSpec, ...] = Field(min_length=1)
    # models/<name>.yaml, less `name`; its `file` is relative to the model's folder (default: the only file,
    # or the folder itself). None: the files only (the YAML is written by hand).
    config: dict | None = None

    def total_size(self) -> int:
        return sum(f.size or 0 for f in self.files)


def parse_index(text: str, source: str) -> tuple[Entry, ...]:
    raw = load_yaml(text, source)
    if not isinstance(raw, list):
        raise InvalidEntry(f"{source}: expected a list of entries")
    return tuple(parse_entry(item, f"{source}[{i}]") for i, item in enumerate(raw))


def load_yaml(text: str, source: str) -> object:
    """The YAML of an index or entry; an error names where it is wrong, never what is written there (the text
    may come from any URL, and yaml's own message quotes the offending line)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InvalidEntry(f"{source}: not valid YAML{where}") from None


def parse_entry(raw: object, source: str) -> Entry:
    try:
        return Entry.model_validate(raw)
    except ValidationError as error:
        raise InvalidEntry(f"{source}: {problem(error)}") from None


@dataclass(frozen=True)
class GallerySource:
    """One configured gallery: a name, and an index at a URL or a local path."""

    name: str
    location: str

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))


def builtin_index() -> Path:
    return Path(__file__).with_name("index.yaml")


def parse_galleries(spec: str) -> tuple[GallerySource, ...]:
    """`name=url_or_path,...`; empty: the index that ships with onebox."""
    sources = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, sep, location = item.partition("=")
        if not sep or not name.strip() or not location.strip() or "@" in name:
            raise ValueError(f"expected name=url_or_path, got {item!r}")
        sources.append(GallerySource(name.strip(), location.strip()))
    return tuple(sources) or (GallerySource(BUILTIN, str(builtin_index())),)


def split_id(model_id: str, galleries: tuple[GallerySource, ...]) -> tuple[str | None, str]:
    """`gallery@name` -> (gallery, name); a bare name -> (None, name): searched in every gallery."""
    gallery, sep, name = model_id.rpartition("@")
    if sep and gallery not in {g.name for g in galleries}:
        raise EntryNotFound(
            f"no gallery named {gallery!r}; configured: {', '.join(g.name for g in galleries)}"
        )
    return (gallery if sep else None), name
