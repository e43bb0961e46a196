"""Human-friendly sizes and durations, as written in flags, env vars and model YAMLs."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}


def parse_size(text: str, total: int) -> int:
    """Bytes from `12GiB`, `512MB`, `1000000` or `80%` (a share of `total`)."""
    text = text.strip()
    if text.endswith("%"):
        share = float(text[:-1])
        if not 0 <= share <= 100:
            raise ValueError(f"a share of memory is 0% to 100%, got {text!r}")
        return int(total * share / 100)
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"expected a size like 12GiB, 512MB or 80%, got {text!r}")
    number, unit = float(match[1]), (match[2] or "").upper().removesuffix("B")
    base = 1024 if unit.endswith("I") else 1000
    power = "KMGT".find(unit[:1]) + 1 if unit else 0
    return int(number * base**power)


def parse_duration(text: str | float) -> float:
    """Seconds from `15m`, `30s`, `1h`, `250ms` or a plain number of seconds; 0 means never."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if not match:
            raise ValueError(f"expected a duration like 15m, 30s or 0, got {text!r}")
        seconds = float(match[1]) * _SECONDS[match[2]]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {text!r}")
    return seconds


def format_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
