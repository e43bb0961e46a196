"""Writing into, and removing from, the models folder without ever following a symbolic link.

Whoever can place a link inside the models folder (or win a race against an install) must not be able to
make an install write, or a delete remove, anything outside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import yaml

from gallery.index import EntryNotFound, GalleryError


class UnsafePath(GalleryError):
    pass


def check_no_links(root: Path, target: Path) -> None:
    """No component of target below root is a symbolic link (root itself is the operator's choice)."""
    current = root
    for part in target.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise UnsafePath(f"{current} is a symbolic link: the gallery never writes or deletes through one")


def make_folder(root: Path, folder: Path) -> None:
    check_no_links(root, folder)
    folder.mkdir(parents=True, exist_ok=True)


def _create_new(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)


def open_new(root: Path, path: Path) -> BinaryIO:
    """A fresh file at path, for reading and writing; a link planted there is removed, never followed."""
    check_no_links(root, path.parent)
    path.unlink(missing_ok=True)  # unlinks a link itself, not what it points to
    return open(path, "w+b", opener=_create_new)  # the caller closes it


def write_atomically(root: Path, path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open_new(root, temporary) as out:
        out.write(text.encode())
    temporary.replace(path)  # a link at path is replaced, not written through


def undo(placed: list[Path], folder: Path | None) -> None:
    for path in placed:
        path.unlink(missing_ok=True)
    if folder is not None and folder.is_dir() and not folder.is_symlink():
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)


def names_folder(yaml_file: Path, name: str) -> bool:
    """Whether a model's YAML points into models/<name>/ (what every gallery install writes)."""
    if yaml_file.is_symlink():
        return False
    try:
        file = (yaml.safe_load(yaml_file.read_text()) or {}).get("file")
    except (OSError, yaml.YAMLError, AttributeError):
        return False
    return isinstance(file, str) and PurePosixPath(file).parts[:1] == (name,)


def remove_model(models_path: Path, name: str) -> None:
    """Delete models/<name>.yaml, and models/<name>/ when that YAML names it: what an install wrote.

    A folder with no YAML is not a model; it is left alone, as is one behind a symbolic link.
    """
    candidates = (models_path / f"{name}.yaml", models_path / f"{name}.yml")
    yamls = [p for p in candidates if p.is_file() or p.is_symlink()]
    folder = models_path / name
    if not yamls:
        if folder.exists() or folder.is_symlink():
            raise EntryNotFound(
                f"no installed model {name!r}: {folder} has no {name}.yaml, so it is not removed "
                "(delete it by hand)"
            )
        raise EntryNotFound(f"no installed model {name!r}")
    named = any(names_folder(p, name) for p in yamls)
    if named:
        check_no_links(models_path, folder)
    for path in yamls:
        path.unlink()
    if named and folder.is_dir():
        shutil.rmtree(folder)  # never follows a link inside the folder: it removes the link
