"""Where a problem is: dotted paths into the YAML tree (``rules[0].when``) and problem kinds.

A problem is ``(location, message)``; a message starting with ``'warning: '`` is a warning.
"""

from __future__ import annotations

__all__ = ["dotted", "is_warning", "line_key", "parent"]


def dotted(keys: tuple[int | str, ...]) -> str:
    """``("rules", 0, "when")`` -> ``'rules[0].when'``."""
    out = ""
    for part in keys:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parent(path: str) -> str:
    """``'rules[0].when'`` -> ``'rules[0]'`` -> ``'rules'`` -> ``''``."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[: max(cut, 0)]


def is_warning(message: str) -> bool:
    """Whether a problem's message is a warning (the config works, but probably not as meant)."""
    return message.startswith("warning: ")


def line_key(problem: tuple[str, str]) -> int:
    """Sort problems by their line in the file (unlocated ones first)."""
    place = problem[0].split(" ", 1)[0]
    line = place.rpartition(":")[2]
    return int(line) if line.isdigit() else 0
