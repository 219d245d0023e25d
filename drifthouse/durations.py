"""Durations as drifthouse spells them: ``"500ms"``, ``"30s"``, ``"15m"``, ``"1h"``, ``"7d"``.

Parsed to integer milliseconds, written back in their shortest exact spelling, and the name a
window gets from its size and hop (docs/configuration.md).

Example
-------
>>> parse_duration("15m"), format_duration(604_800_000), window_name("60m/30s")
(900000, '1w', '1h/30s')
"""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration", "window_name"]

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(value: object) -> int:
    """Parse ``"500ms"``, ``"30s"``, ``"15m"``, ``"1h"``, ``"7d"`` or integer seconds into milliseconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30s', '15m' or '1h' (got {value!r})")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected a non-negative duration (got {value})")
        return value * 1_000
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return int(match.group(1)) * _UNITS_MS[match.group(2)]
    raise ValueError(
        f"expected a duration such as '30s', '15m', '1h' or '7d' (got {value!r} that is a {type(value).__name__})"
    )


def format_duration(ms: int) -> str:
    """The shortest exact spelling of a duration: 3_600_000 -> ``'1h'``."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def window_name(text: str) -> str:
    """The name drifthouse gives a window spelled ``text``: ``'7d'`` -> ``'1w'``,
    ``'15m/60s'`` -> ``'15m/1m'``; globs and anything else come back unchanged.

    >>> window_name("7d"), window_name("60m/30s"), window_name("1*")
    ('1w', '1h/30s', '1*')
    """
    if any(ch in text for ch in "*?["):
        return text
    try:
        parts = [parse_duration(part) for part in text.split("/")]
    except ValueError:
        return text
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == parts[1]):
        return format_duration(parts[0])
    if len(parts) == 2:
        return f"{format_duration(parts[0])}/{format_duration(parts[1])}"
    return text
