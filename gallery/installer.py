"""Installs gallery entries into the models directory, one asyncio task per model.

Each model's files go in models/<name>/; each file is fetched into `<file>.partial`, checked against its
sha256, then renamed into place. A job that fails or is cancelled removes what it put there. Once the files
are in place, models/<name>.yaml is written (atomically), and the server's registry picks it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import aiohttp
import yaml
from pydantic import ValidationError

from gallery.download import DownloadError, check_room, fetch, http_url
from gallery.index import (
    AlreadyInstalled,
    Entry,
    EntryNotFound,
    FileSpec,
    GalleryError,
    GallerySource,
    InvalidEntry,
    check_filename,
    parse_entry,
    parse_index,
    split_id,
)
from gallery.jobs import Job, Phase
from gallery.pypi import sha256_of
from onebox_common.model_config import ModelConfig
from onebox_common.names import MODEL_NAME
from onebox_common.options import problem

log = logging.getLogger("onebox.gallery")

KEEP_FINISHED = 100  # finished jobs remembered for GET /models/jobs


class Installer:
    """Owns the install jobs and the HTTP session they download with; use it as an async context manager."""

    def __init__(
        self, models_path: Path, galleries: tuple[GallerySource, ...], file_root: Path | None = None
    ) -> None:
        self.models_path = models_path
        self.galleries = galleries
        self.file_root = file_root
        self._jobs: dict[str, Job] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Installer:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
        self._session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = [job.task for job in self._jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the Installer as `async with`")
        return self._session

    # -- what can be installed --------------------------------------------------------------------------

    async def read_gallery(self, source: GallerySource) -> tuple[Entry, ...]:
        try:
            if source.is_url:
                async with self.session.get(source.location) as response:
                    response.raise_for_status()
                    text = await response.text()
            else:
                text = Path(source.location).read_text()
        except (OSError, aiohttp.ClientError) as error:
            raise GalleryError(
                f"gallery {source.name!r} ({source.location}) cannot be read: {error}"
            ) from None
        return parse_index(text, source.name)

    async def available(self) -> list[dict]:
        found = []
        for source in self.galleries:
            try:
                entries = await self.read_gallery(source)
            except GalleryError as error:
                log.warning("%s", error)
                continue
            for entry in entries:
                found.append(describe_entry(source.name, entry, self.is_installed(entry.name)))
        return found

    async def find(self, model_id: str) -> tuple[str, Entry]:
        gallery, name = split_id(model_id, self.galleries)
        for source in self.galleries:
            if gallery not in (None, source.name):
                continue
            for entry in await self.read_gallery(source):
                if entry.name == name:
                    return source.name, entry
        raise EntryNotFound(f"no gallery entry {model_id!r}; GET /models/available lists them")

    async def entry_from_url(self, url: str, name: str | None, sha256: str | None = None) -> Entry:
        """A URL of an entry (.yaml), or of a weights file: a .gguf becomes a llama-cpp model."""
        path = urlsplit(url).path
        if path.endswith((".yaml", ".yml")):
            try:
                async with self.session.get(url) as response:
                    response.raise_for_status()
                    raw = yaml.safe_load(await response.text())
            except (aiohttp.ClientError, yaml.YAMLError) as error:
                raise GalleryError(f"{url} cannot be read as a gallery entry: {error}") from None
            if not isinstance(raw, dict):
                raise InvalidEntry(f"{url}: expected one entry (a mapping)")
            return parse_entry(raw if name is None else {**raw, "name": name}, url)
        filename = unquote(PurePosixPath(path).name)
        if name is None:
            raise InvalidEntry("'name' is required with a file URL")
        config = {"backend": "llama-cpp"} if filename.endswith(".gguf") else {}
        files = [{"filename": filename, "uri": url, "sha256": sha256}]
        return parse_entry({"name": name, "files": files, "config": config}, url)

    # -- jobs ---------------------------------------------------------------------------------------------

    def apply(self, entry: Entry, source: str, name: str | None = None, overrides: dict | None = None) -> Job:
        """Start installing (or return the job already installing the same model)."""
        name = name or entry.name
        for job in self._jobs.values():
            if job.model == name and job.active:
                return job
        if not MODEL_NAME.fullmatch(name):
            raise InvalidEntry(f"invalid model name {name!r}: a model name is not a path")
        config = model_yaml(entry, name, overrides or {}, self.models_path)
        if config is not None and self.yaml_path(name).exists():
            raise AlreadyInstalled(f"a model named {name!r} is installed; remove it first")
        job = Job(model=name, source=source, total=entry.total_size())
        job.task = asyncio.create_task(self._run(job, entry, config), name=f"install {name}")
        self._jobs[job.uuid] = job
        self._forget_old()
        return job

    async def install(self, entry: Entry, source: str, name: str | None = None) -> Job:
        job = self.apply(entry, source, name)
        assert job.task is not None
        await asyncio.gather(job.task, return_exceptions=True)
        return job

    def get(self, job_uuid: str) -> Job:
        try:
            return self._jobs[job_uuid]
        except KeyError:
            raise EntryNotFound(f"no install job {job_uuid!r}") from None

    def jobs(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: j.created)

    def cancel(self, job_uuid: str) -> Job:
        job = self.get(job_uuid)
        if job.task is not None and not job.task.done():
            job.task.cancel()
        return job

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs() if not j.active]
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.uuid]

    # -- installed models ---------------------------------------------------------------------------------

    def yaml_path(self, name: str) -> Path:
        return self.models_path / f"{name}.yaml"

    def is_installed(self, name: str) -> bool:
        return self.yaml_path(name).exists()

    def remove(self, name: str) -> None:
        """Delete models/<name>.yaml and models/<name>/ (a name never holds a separator: it cannot escape)."""
        if not MODEL_NAME.fullmatch(name):
            raise InvalidEntry(f"invalid model name {name!r}: a model name is not a path")
        if any(job.model == name and job.active for job in self._jobs.values()):
            raise AlreadyInstalled(f"{name!r} is being installed; cancel the job first")
        yamls = [p for p in (self.yaml_path(name), self.models_path / f"{name}.yml") if p.exists()]
        folder = self.models_path / name
        if not yamls and not folder.is_dir():
            raise EntryNotFound(f"no installed model {name!r}")
        for path in yamls:
            path.unlink()
        if folder.is_dir():
            shutil.rmtree(folder)
        log.info("removed %s", name)

    # -- one job --------------------------------------------------------------------------------------------

    async def _run(self, job: Job, entry: Entry, config: dict | None) -> None:
        folder = self.models_path / job.model
        placed: list[Path] = []  # files this job put in place: removed again if it does not finish
        made_folder = not folder.exists()
        try:
            check_room(self.models_path, entry.total_size())
            folder.mkdir(parents=True, exist_ok=True)
            for spec in entry.files:
                if await self._fetch_file(job, spec, folder / spec.filename):
                    placed.append(folder / spec.filename)
            if config is not None:
                job.phase = Phase.CONFIGURING
                write_atomically(self.yaml_path(job.model), yaml.safe_dump(config, sort_keys=False))
            job.finish(Phase.DONE)
            log.info("%s (%s): %d file(s) fetched, %d already in place", job.model, job.source, len(placed),
                     len(entry.files) - len(placed))  # fmt: skip
        except asyncio.CancelledError:
            undo(placed, folder if made_folder else None)
            job.finish(Phase.CANCELLED, "cancelled")
            raise
        except Exception as error:
            undo(placed, folder if made_folder else None)
            if not isinstance(error, GalleryError):
                log.exception("installing %s failed", job.model)
            job.finish(Phase.FAILED, str(error) or repr(error))
            log.error("installing %s failed: %s", job.model, job.error)

    async def _fetch_file(self, job: Job, spec: FileSpec, dest: Path) -> bool:
        """Put one file in place; False when it was already there, checksum and all."""
        job.file = spec.filename
        if spec.sha256 and dest.is_file() and await asyncio.to_thread(sha256_of, dest) == spec.sha256:
            job.advance(spec.size or dest.stat().st_size)
            return False
        job.phase = Phase.DOWNLOADING
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        try:
            with partial.open("w+b") as out:
                for uri in spec.uris:
                    await fetch(self.session, uri, out, job.advance, self.file_root)
            if spec.sha256:
                job.phase = Phase.VERIFYING
                actual = await asyncio.to_thread(sha256_of, partial)
                if actual != spec.sha256:
                    raise DownloadError(
                        f"{spec.filename}: sha256 mismatch: got {actual}, expected {spec.sha256}"
                    )
            else:
                log.warning("%s: no sha256 given, the file is not verified", spec.filename)
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
        return True


def describe_entry(gallery: str, entry: Entry, installed: bool) -> dict:
    return {
        "id": f"{gallery}@{entry.name}",
        "gallery": gallery,
        "name": entry.name,
        "description": entry.description,
        "license": entry.license,
        "tags": list(entry.tags),
        "backend": entry.backend or (entry.config or {}).get("backend", ""),
        "size": entry.size,
        "size_bytes": entry.total_size() or None,
        "urls": list(entry.urls),
        "sources": [http_url(u) or u for f in entry.files for u in f.uris],
        "installed": installed,
    }


def merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        old = merged.get(key)
        merged[key] = merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return merged


def model_yaml(entry: Entry, name: str, overrides: dict, models_path: Path) -> dict | None:
    """models/<name>.yaml for this entry, validated now so that a bad override fails before any download."""
    if entry.config is None and not overrides:
        return None
    config = merge(entry.config or {}, overrides)
    config.pop("name", None)
    inner = config.get("file") or (entry.files[0].filename if len(entry.files) == 1 else None)
    try:
        file = f"{name}/{check_filename(inner)}" if inner else name
    except ValueError as error:
        raise InvalidEntry(f"{entry.name}: config key 'file': {error}") from None
    data = {"name": name, **config, "file": file}
    try:
        ModelConfig.model_validate(data)
    except ValidationError as error:
        raise InvalidEntry(f"{entry.name}: config {problem(error)}") from None
    return data


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def undo(placed: list[Path], folder: Path | None) -> None:
    for path in placed:
        path.unlink(missing_ok=True)
    if folder is not None and folder.is_dir():
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
