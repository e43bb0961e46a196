"""python -m gallery install-defaults --models-path models"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources
from pathlib import Path

import yaml

from gallery.pypi import InstallError, install_file

log = logging.getLogger("onebox.gallery")


def install_defaults(models_path: Path) -> None:
    entries = yaml.safe_load(resources.files("gallery").joinpath("defaults.yaml").read_text())
    for entry in entries:
        for spec in entry["files"]:
            dest = models_path / entry["name"] / spec["filename"]
            if install_file(spec["parts"], spec["sha256"], dest):
                log.info("installed %s", dest)
            else:
                log.info("%s is installed", dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gallery")
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = commands.add_parser("install-defaults", help="put the default models' weights in place")
    defaults.add_argument("--models-path", type=Path, default=Path("models"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        install_defaults(args.models_path)
    except InstallError as error:
        log.error("install failed: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
