"""frontend/browser_guard.py's decisions, with literal inputs."""

from __future__ import annotations

import pytest

from frontend.browser_guard import host_allowed, origin_allowed


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8080", True),
        ("localhost:8080", True),
        ("LOCALHOST", True),
        ("[::1]:8080", True),
        ("app.localhost:8080", True),
        ("evil.example:8080", False),
        ("evil.example", False),
        ("10.0.0.5:8080", False),
        ("", False),
    ],
)
def test_host_names_a_loopback_server_answers_to(host: str, allowed: bool) -> None:
    assert host_allowed(host, "127.0.0.1", ()) is allowed


def test_allowed_hosts_add_names_and_star_allows_any() -> None:
    assert host_allowed("box.lan:8080", "127.0.0.1", ("box.lan",))
    assert host_allowed("anything.example", "127.0.0.1", ("*",))


def test_same_origin_and_configured_origins_may_change_state() -> None:
    assert origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080", ())
    assert origin_allowed("https://app.example", "127.0.0.1:8080", ("https://app.example",))
    assert not origin_allowed("https://evil.example", "127.0.0.1:8080", ())
