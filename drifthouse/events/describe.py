"""How the decoders' messages show a value: its JSON type and a short preview (docs/events.md).

A :class:`~drifthouse.errors.DecodeError` says what was expected and what came; these helpers
write the "what came" part the same way for every kind of event.

>>> describe([1, 2])
'array [1, 2]'
>>> key_path("amount"), key_path("a b")
('.amount', '["a b"]')
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["describe", "key_path", "lower_first", "preview"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def key_path(key: str) -> str:
    """The path step of an object member: ``.name``, or ``["odd name"]`` when it needs quoting."""
    return f".{key}" if _IDENT.match(key) else f"[{json.dumps(key, ensure_ascii=False)}]"


def describe(value: Any) -> str:
    """``'string "abc"'``, ``'array [1, 2]'``: the JSON type and a short preview of a value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"bool {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {preview(value)}"
    if isinstance(value, float):
        return f"number {preview(value)}"
    if isinstance(value, str):
        return f"string {preview(value)}"
    if isinstance(value, list):
        return f"array {preview(value)}"
    if isinstance(value, dict):
        return f"object {preview(value)}"
    return f"{type(value).__name__} {preview(value)}"


def preview(value: Any, limit: int = 60) -> str:
    """The value as JSON (its ``repr`` when it is not JSON), cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def lower_first(text: str) -> str:
    """Lower-case the first letter of a sentence, but not of an acronym (``JSON is ...``)."""
    return text if text[1:2].isupper() else text[:1].lower() + text[1:]
