"""``drifthouse sql`` output: values printed whole off a terminal, control characters made visible."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from drifthouse import cli
from drifthouse.sql_output import print_result, visible

NASTY = "ok\x1b[2J\x1b]0;pwned\x07\rforged\nrow\x9b31m\x7f"
LONG = "feature_" + "x" * 400


def _render(fmt: str, columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    buffer = io.StringIO()
    print_result(columns, rows, fmt, Console(file=buffer, width=80))
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_control_characters_never_reach_the_terminal(fmt: str) -> None:
    text = _render(fmt, ["model\x1b[31m"], [(NASTY,), (LONG,)])
    raw_controls = [c for c in text if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F]
    assert raw_controls == []
    if fmt == "json":
        assert json.loads(text)[0]["model\x1b[31m"] == NASTY  # escaped, not lost
    else:
        assert visible(NASTY) in text
        assert "\\x1b[2J" in text


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_long_values_are_printed_whole_off_a_terminal(fmt: str) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    text = _render(
        fmt, ["feature", "at", "psi", "n"], [(LONG, when, 0.25, 7), ("amount", when, None, 0)]
    )
    assert LONG in text
    assert "…" not in text
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["feature", "at", "psi", "n"]
        assert rows[1] == [LONG, str(when), "0.25", "7"]
        assert rows[2][2] == ""
    if fmt == "json":
        assert json.loads(text)[0] == {"feature": LONG, "at": when.isoformat(), "psi": 0.25, "n": 7}
    if fmt == "table":
        assert "2 rows" in text
        assert all(len(line) <= 3 * 4 + 1 + len(LONG) + 30 + 10 for line in text.splitlines())


def test_drifthouse_sql_prints_whole_values_and_visible_controls(
    ch_dsn: str, ch_database: tuple[Any, str], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _, database = ch_database
    config = tmp_path / "drifthouse.yaml"
    config.write_text(f"store: {{dsn: '{ch_dsn}', database: {database}}}\n")
    code = cli.main(
        ["sql", "SELECT {a:String} AS a, {b:String} AS b", "-c", str(config),
         "--param", f"a={LONG}", "--param", f"b={NASTY}"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert LONG in captured.out
    assert "\x1b" not in captured.out
    assert "\\x1b[2J" in captured.out
