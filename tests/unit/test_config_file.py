"""frontend/config_file.py and `onebox run --config`: flag > environment > file > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontend.cli import build_parser, parse_args, subcommand


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "onebox.yaml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for flag in ("ADDRESS", "MODELS_PATH", "THREADS", "CONFIG", "LOG_LEVEL"):
        monkeypatch.delenv(f"ONEBOX_{flag}", raising=False)


def test_a_file_sets_flags_by_their_long_names_with_dashes_or_underscores(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        "address: 127.0.0.1:9000\nmodels_path: /srv/models\npreload: [a, b]\n"
        "allow-insecure-public-bind: true\nlog-level: debug\n",
    )
    args = parse_args(["run", "--config", str(path)])
    assert args.address == ("127.0.0.1", 9000)
    assert args.models_path == Path("/srv/models")
    assert args.preload == "a,b"
    assert args.allow_insecure_public_bind is True
    assert args.log_level == "DEBUG"


def test_a_flag_beats_the_environment_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, "threads: 3\nmodels-path: /from/file\naddress: 127.0.0.1:9000\n")
    monkeypatch.setenv("ONEBOX_THREADS", "5")
    monkeypatch.setenv("ONEBOX_MODELS_PATH", "/from/env")
    args = parse_args(["run", "--config", str(path), "--models-path", "/from/flag"])
    assert args.models_path == Path("/from/flag")
    assert args.threads == 5
    assert args.address == ("127.0.0.1", 9000)


def test_the_environment_can_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEBOX_CONFIG", str(config(tmp_path, "threads: 7\n")))
    assert parse_args(["run"]).threads == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("adress: 127.0.0.1:1\n", "unknown key 'adress'"),
        ("threads: many\n", "key 'threads': expected a whole number, got 'many'"),
        ("log-level: loud\n", "key 'log-level': 'loud' is not one of DEBUG, INFO, WARNING, ERROR"),
        ("allow-insecure-public-bind: maybe\n", "key 'allow-insecure-public-bind': expected true or false"),
        ("config: other.yaml\n", "unknown key 'config'"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture, text: str, message: str
) -> None:
    path = config(tmp_path, text)
    with pytest.raises(SystemExit) as exited:
        parse_args(["run", "--config", str(path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_every_run_flag_has_an_environment_twin_named_after_it() -> None:
    # the config file relies on it: a key is left to the environment when ONEBOX_<FLAG> is set
    run = subcommand(build_parser(), "run")
    for action in run._actions:
        if action.dest != "help":
            assert f"ONEBOX_{action.dest.upper()}" in (action.help or ""), action.dest


def test_run_help_shows_defaults_but_never_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEBOX_API_KEYS", "sk-secret")
    text = " ".join(subcommand(build_parser(), "run").format_help().split())
    assert "(default: 127.0.0.1:8080)" in text
    assert "sk-secret" not in text
