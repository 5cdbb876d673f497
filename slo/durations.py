"""Prometheus-style durations (``5m``, ``1h``, ``30d``) as whole seconds."""

from __future__ import annotations

import re
from functools import lru_cache

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^(\d+)([smhdw])$")


@lru_cache(maxsize=1024)
def parse(text: str) -> int:
    """Seconds in ``text``; raises ValueError naming the accepted form."""
    match = _PATTERN.fullmatch(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(
            f"{text!r} is not a duration: write a positive whole number followed by one of "
            "s, m, h, d, w (for example 5m, 1h, 30d)"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_seconds(seconds: int) -> str:
    """The shortest exact Prometheus duration for ``seconds`` (3600 -> ``1h``)."""
    for unit in ("w", "d", "h", "m"):
        size = _UNITS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
