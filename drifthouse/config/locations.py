"""Where a problem is: dotted paths into the YAML tree (``rules[0].when``) and problem kinds.

A problem is ``(location, message)``; a message starting with ``'warning: '`` is a warning.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["dotted", "is_warning", "line_key", "locate", "parent"]


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


def locate(source: str, lines: Mapping[str, int], path: str) -> str:
    """``'drifthouse.yaml:12 rules[0].when'``: ``path`` located in ``source``, whose ``lines``
    index dotted paths; a path the file does not spell out takes its nearest ancestor's line.

    >>> locate("d.yaml", {"rules": 3, "rules[0]": 4}, "rules[0].clear")
    'd.yaml:4 rules[0].clear'
    """
    probe = path
    while probe and probe not in lines:
        probe = parent(probe)
    line = lines.get(probe)
    place = f"{source}:{line}" if line and source else source
    return f"{place} {path}".strip()


def is_warning(message: str) -> bool:
    """Whether a problem's message is a warning (the config works, but probably not as meant)."""
    return message.startswith("warning: ")


def line_key(problem: tuple[str, str]) -> int:
    """Sort problems by their line in the file (unlocated ones first)."""
    place = problem[0].split(" ", 1)[0]
    line = place.rpartition(":")[2]
    return int(line) if line.isdigit() else 0
