"""Installs gallery entries into the models directory, one asyncio task per model.

Each model's files go in models/<name>/; each file is fetched into `<file>.partial`, checked against its
sha256, then renamed into place. A job that fails or is cancelled removes what it put there. Once the files
are in place, models/<name>.yaml is written (atomically), and the server's registry picks it up.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import aiohttp
import yaml
from aiohttp.abc import AbstractResolver
from pydantic import ValidationError

from gallery.download import DownloadError, check_room, fetch, fetch_text, http_url
from gallery.files import check_no_links, make_folder, open_new, remove_model, undo, write_atomically
from gallery.index import (
    AlreadyInstalled,
    Entry,
    EntryNotFound,
    FileSpec,
    GalleryError,
    GallerySource,
    InvalidEntry,
    check_filename,
    load_yaml,
    parse_entry,
    parse_index,
    split_id,
)
from gallery.jobs import Job, Phase
from gallery.policy import DownloadPolicy, RefusedSource, check_target, download_session
from gallery.pypi import sha256_of
from onebox_common.model_config import ModelConfig
from onebox_common.names import MODEL_NAME
from onebox_common.options import problem

log = logging.getLogger("onebox.gallery")

KEEP_FINISHED = 100  # finished jobs remembered for GET /models/jobs


class Installer:
    """Owns the install jobs and the HTTP session they download with; use it as an async context manager."""

    def __init__(
        self,
        models_path: Path,
        galleries: tuple[GallerySource, ...],
        file_root: Path | None = None,
        policy: DownloadPolicy | None = None,  # None: the defaults (HTTPS, public addresses, sha256)
        resolver: AbstractResolver | None = None,  # DNS for tests; aiohttp's default otherwise
    ) -> None:
        self.models_path = models_path
        self.galleries = galleries
        self.file_root = file_root
        self.policy = policy or DownloadPolicy()
        self._resolver = resolver
        self._jobs: dict[str, Job] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Installer:
        self._session = download_session(self.policy, self._resolver)
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
        if source.is_url:
            try:
                text = await fetch_text(self.session, source.location)
            except GalleryError as error:
                raise GalleryError(f"gallery {source.name!r} cannot be read: {error}") from None
        else:
            try:
                text = Path(source.location).read_text()
            except OSError as error:
                raise GalleryError(
                    f"gallery {source.name!r} ({source.location}) cannot be read: {error.strerror}"
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
        known: list[str] = []
        for source in self.galleries:
            if gallery not in (None, source.name):
                continue
            for entry in await self.read_gallery(source):
                if entry.name == name:
                    return source.name, entry
                known.append(entry.name)
        raise EntryNotFound(f"no gallery entry {model_id!r}{suggest(name, known)}")

    async def entry_from_url(self, url: str, name: str | None, sha256: str | None = None) -> Entry:
        """A URL of an entry (.yaml), or of a weights file: a .gguf becomes a llama-cpp model."""
        check_source(url, self.policy)
        path = urlsplit(url).path
        if path.endswith((".yaml", ".yml")):
            try:
                raw = load_yaml(await fetch_text(self.session, url), url)
            except GalleryError as error:
                raise GalleryError(f"cannot be read as a gallery entry: {error}") from None
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
        check_policy(entry, self.policy)
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
        """Delete models/<name>.yaml and the folder it names (a name never holds a separator: it cannot
        escape); gallery/files.py refuses folders without a YAML and symbolic links."""
        if not MODEL_NAME.fullmatch(name):
            raise InvalidEntry(f"invalid model name {name!r}: a model name is not a path")
        if any(job.model == name and job.active for job in self._jobs.values()):
            raise AlreadyInstalled(f"{name!r} is being installed; cancel the job first")
        remove_model(self.models_path, name)
        log.info("removed %s", name)

    # -- one job --------------------------------------------------------------------------------------------

    async def _run(self, job: Job, entry: Entry, config: dict | None) -> None:
        folder = self.models_path / job.model
        placed: list[Path] = []  # files this job put in place: removed again if it does not finish
        made_folder = not folder.exists()
        try:
            check_room(self.models_path, entry.total_size())
            make_folder(self.models_path, folder)
            for spec in entry.files:
                if await self._fetch_file(job, spec, folder / spec.filename):
                    placed.append(folder / spec.filename)
            if config is not None:
                job.phase = Phase.CONFIGURING
                text = yaml.safe_dump(config, sort_keys=False)
                write_atomically(self.models_path, self.yaml_path(job.model), text)
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
        check_no_links(self.models_path, dest)
        if spec.sha256 and dest.is_file() and await asyncio.to_thread(sha256_of, dest) == spec.sha256:
            job.advance(spec.size or dest.stat().st_size)
            return False
        job.phase = Phase.DOWNLOADING
        make_folder(self.models_path, dest.parent)
        partial = dest.with_name(dest.name + ".partial")
        meter = Meter(job, self.policy.max_bytes)
        try:
            with open_new(self.models_path, partial) as out:
                for uri in spec.uris:
                    await fetch(self.session, uri, out, meter, self.file_root)
            if spec.sha256:
                job.phase = Phase.VERIFYING
                actual = await asyncio.to_thread(sha256_of, partial)
                if actual != spec.sha256:
                    raise DownloadError(
                        f"{spec.filename}: sha256 mismatch: got {actual}, expected {spec.sha256}"
                    )
            else:
                log.warning("%s: no sha256 given, the file is not verified", spec.filename)
            check_no_links(self.models_path, dest)
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
        return True


class Meter:
    """A job's byte count, held to the size cap as the bytes arrive (a server's Content-Length may lie)."""

    def __init__(self, job: Job, limit: int) -> None:
        self.job = job
        self.limit = limit

    def advance(self, nbytes: int) -> None:
        self.job.advance(nbytes)
        self._check(0)

    def expect(self, nbytes: int) -> None:
        self._check(nbytes)

    def retrying(self, problem: str | None) -> None:
        self.job.retrying(problem)

    def _check(self, more: int) -> None:
        if self.job.bytes_done + more > self.limit:
            raise RefusedSource(f"{self.job.model}: larger than the download limit of {self.limit} bytes "
                                "(the operator sets it with --max-download-size)")  # fmt: skip


def check_policy(entry: Entry, policy: DownloadPolicy) -> None:
    """What the operator allows, decided before anything is fetched."""
    for uri in (u for spec in entry.files for u in spec.uris):
        check_source(uri, policy)
    if not policy.allow_unverified:
        for spec in entry.files:
            if not spec.sha256:
                raise RefusedSource(
                    f"{entry.name}: file {spec.filename!r} has no sha256, so it cannot be verified; give one "
                    "(or the operator may allow it with --allow-unverified-installs)"
                )
    if entry.total_size() > policy.max_bytes:
        raise RefusedSource(f"{entry.name}: {entry.total_size()} bytes, more than the download limit of "
                            f"{policy.max_bytes} (--max-download-size)")  # fmt: skip


def check_source(uri: str, policy: DownloadPolicy) -> None:
    """The scheme and a literal address, at once (a 400 rather than a failed job); names are checked again
    on the address each connection goes to (gallery/policy.py)."""
    url = http_url(uri)
    if url is not None:
        split = urlsplit(url)
        check_target(split.scheme, split.hostname or "", policy)


def suggest(name: str, known: list[str]) -> str:
    """Close matches (a typo, or a prefix such as `qwen`) and where the full list is."""
    close = [k for k in known if name.lower() in k.lower()] + difflib.get_close_matches(name, known, n=3)
    unique = list(dict.fromkeys(close))[:3]
    hint = f"; did you mean {' or '.join(unique)}?" if unique else ""
    return f"{hint} (`onebox models available` lists them; GET /models/available over HTTP)"


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
