"""How ``drifthouse sql`` prints a result: ``table``, ``csv`` or ``json``.

Values are data: control characters (C0, DEL, C1: terminal escapes, carriage returns,
newlines) print as visible escapes (``\\x1b``) in ``table`` and ``csv``, so a value cannot move
the cursor, recolour the terminal or forge rows; ``json`` escapes them the JSON way. A ``table``
written to a file or a pipe is as wide as its values: nothing is cut.

>>> visible("ok\\x1b[31mred\\r")
'ok\\\\x1b[31mred\\\\x0d'
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import re
import uuid
from collections.abc import Sequence
from typing import IO, Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["FORMATS", "print_result", "visible"]

FORMATS = ("table", "csv", "json")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with every control character written as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _text(value: Any) -> str:
    return visible("" if value is None else str(value))


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def print_result(
    columns: list[str], rows: Sequence[Sequence[Any]], fmt: str, console: Console
) -> None:
    """Write ``rows`` under ``columns`` to ``console`` in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "csv":
        writer = csv.writer(_Writer(console), lineterminator="\n")
        writer.writerow([visible(c) for c in columns])
        writer.writerows([[_text(v) for v in row] for row in rows])
        return
    if fmt == "json":
        payload = [
            {column: _json_value(v) for column, v in zip(columns, row, strict=True)} for row in rows
        ]
        text = json.dumps(payload, ensure_ascii=False, indent=1, allow_nan=True)
        # json escapes C0; DEL and C1 are escaped here so no raw control reaches the terminal.
        text = re.sub(r"[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text)
        console.file.write(text + "\n")
        return
    table = Table()
    cells = [[_text(v) for v in row] for row in rows]
    for column in columns:
        table.add_column(Text(visible(column)), no_wrap=not console.is_terminal)
    for row in cells:
        table.add_row(*(Text(v) for v in row))
    footer = Text(f"{len(rows)} row{'s' if len(rows) != 1 else ''}", "dim")
    if console.is_terminal:
        console.print(table)
        console.print(footer)
        return
    # Not a terminal: as wide as the widest value of every column, so nothing is cut.
    widths = [
        max([cell_len(visible(c))] + [cell_len(row[i]) for row in cells])
        for i, c in enumerate(columns)
    ]
    wide = Console(
        file=console.file,
        width=max(80, sum(widths) + 3 * len(widths) + 1),
        highlight=False,
        color_system=None,
        soft_wrap=False,
    )
    wide.print(table)
    wide.print(footer)


class _Writer:
    """A file-like ``write`` onto a console's file (csv.writer needs one)."""

    def __init__(self, console: Console) -> None:
        self._file: IO[str] = console.file

    def write(self, text: str) -> int:
        return self._file.write(text)
