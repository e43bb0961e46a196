"""`onebox run --config FILE`: the run flags from a YAML file, and how `onebox run --help` shows defaults.

The file's keys are the long flag names (`models-path`, or `models_path`); its values are what the flag
would take. The file's settings become command-line words placed before the real ones, so argparse itself
gives the order of precedence: a flag on the command line, then its ONEBOX_ environment variable (a key
whose variable is set is left out), then the file, then the default. Each value is checked here, so an
error names the file and the key.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import yaml

NOT_SETTINGS = {"help", "config"}  # flags a config file cannot set
# never shown as a default in --help, where the environment may have put a key
SECRETS = {"api_keys", "admin_api_keys"}


class ConfigFileError(Exception):
    """A config file that cannot be used; the message names the file and, where one is wrong, the key."""


def config_file_words(
    path: Path, parser: argparse.ArgumentParser, set_in_env: Callable[[str], bool]
) -> list[str]:
    """The file's settings as `--flag=value` words for `parser`, leaving out those whose environment
    variable is set (`set_in_env` is given the flag's dest)."""
    flags = settable_flags(parser)
    words: list[str] = []
    for key, value in read_mapping(path).items():
        flag = str(key).replace("_", "-")
        action = flags.get(flag)
        if action is None:
            raise ConfigFileError(
                f"{path}: unknown key {key!r}; the keys are the long flags of `onebox run`: "
                + ", ".join(sorted(flags))
            )
        if not set_in_env(action.dest):
            words += flag_words(path, key, flag, action, value)
    return words


def read_mapping(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigFileError(f"{path}: cannot read: {error}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigFileError(f"{path}: expected a mapping of flag names to values at the top level")
    return raw


def settable_flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        option.removeprefix("--"): action
        for action in parser._actions  # argparse has no public list of a parser's flags
        for option in action.option_strings
        if option.startswith("--") and action.dest not in NOT_SETTINGS
    }


def flag_words(path: Path, key: object, flag: str, action: argparse.Action, value: object) -> list[str]:
    if action.nargs == 0:  # an on/off flag such as --allow-insecure-public-bind
        if not isinstance(value, bool):
            raise ConfigFileError(f"{path}: key {key!r}: expected true or false, got {value!r}")
        return [f"--{flag}"] if value else []
    if isinstance(value, list):  # a list for the comma-separated flags (preload, galleries...)
        value = ",".join(str(item) for item in value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigFileError(f"{path}: key {key!r}: expected a value like the flag takes, got {value!r}")
    text = str(value)
    check_value(path, key, action, text)
    return [f"--{flag}={text}"]


def check_value(path: Path, key: object, action: argparse.Action, text: str) -> None:
    """The checks argparse makes, here to name the file and key in the message."""
    try:
        converted = action.type(text) if callable(action.type) else text
    except (argparse.ArgumentTypeError, ValueError, TypeError) as error:
        raise ConfigFileError(f"{path}: key {key!r}: {error}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigFileError(f"{path}: key {key!r}: {text!r} is not one of {choices}")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Each flag's help ends with its default as it stands (its environment variable applied), except for
    flags with none to show and for secrets."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if not action.option_strings or "%(default)" in text or action.dest in SECRETS:
            return text
        if default is None or default is argparse.SUPPRESS or default is False or default == "":
            return text
        return f"{text} (default: %(default)s)"
