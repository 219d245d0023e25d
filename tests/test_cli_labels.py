"""``drifthouse labels join``: the late join from the command line, on the real embedded engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from drifthouse.cli import main
from drifthouse.cli.labels import parse_since
from drifthouse.rows import Row
from drifthouse.sinks import ClickHouseSink, migrate
from tests.stream.labels.test_late_join import RUN, _config, _inputs, _run, _stored

NOW = 1_780_000_000_000


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("all", 0, id="all"),
        pytest.param("7d", NOW // 1000 - 7 * 86_400, id="duration"),
        pytest.param("2026-01-01", 1_767_225_600, id="date"),
        pytest.param("2026-01-01T06:00:00Z", 1_767_247_200, id="time"),
        pytest.param("1767225600000", 1_767_225_600, id="epoch-ms"),
    ],
)
def test_since(value: str, seconds: int) -> None:
    assert parse_since(value, NOW) == seconds


def test_bad_since_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ch_dsn: str
) -> None:
    path = tmp_path / "drifthouse.yaml"
    path.write_text(json.dumps({"store": {"dsn": ch_dsn}}))
    assert main(["labels", "join", "-c", str(path), "--since", "last tuesday"]) == 2
    assert "--since must be 'all', a duration such as 7d" in capsys.readouterr().err


def test_labels_join_rewrites_the_windows(
    ch_dsn: str, ch_database: tuple[Any, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client, database = ch_database
    migrate(client, database)
    items = _inputs(seed=11)[:1_500]
    rows: list[Row] = []
    _run(_config("7d", late=True), items, rows)
    sink = ClickHouseSink(client, database=database)
    sink.write(rows)
    sink.flush()
    before = _stored(client, database)
    settings = {
        "store": {"dsn": ch_dsn, "database": database},
        "windows": [{"size": "1h"}, {"size": "1d", "hop": "6h"}],
        "metrics": {"label_horizon": "7d", "late_labels": True},
    }
    path = tmp_path / "drifthouse.yaml"
    path.write_text(json.dumps(settings))
    assert main(["labels", "join", "-c", str(path), "--since", "all", "--run-id", RUN]) == 0
    said = capsys.readouterr().out
    assert "pairs joined in ClickHouse (models: 1)" in said
    assert "windows rewritten" in said
    after = _stored(client, database)
    assert len(after) > len(before)  # windows whose labels all came late now have their metrics


_STORE_ROWS = """
import sys, clickhouse_connect
from drifthouse.rows import Row
from drifthouse.sinks import ClickHouseSink, migrate
from tests.stream.labels.test_late_join import _config, _inputs, _run
client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
migrate(client, "drifthouse")
rows: list[Row] = []
_run(_config("7d", late=True), _inputs(seed=11)[:1_500], rows)
sink = ClickHouseSink(client, database="drifthouse")
sink.write(rows)
sink.close()
client.close()
"""


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_labels_join_every_runs_until_sigterm_then_exits_0(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """``--every``: a join at once, then one per slot; SIGTERM (or Ctrl-C) ends the loop
    cleanly."""
    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-c", _STORE_ROWS, str(data)], cwd=root, check=True, timeout=180
    )
    path = tmp_path / "drifthouse.yaml"
    path.write_text(
        json.dumps(
            {
                "store": {"dsn": f"chdb://{data}"},
                "windows": [{"size": "1h"}, {"size": "1d", "hop": "6h"}],
                "metrics": {"label_horizon": "7d", "late_labels": True},
            }
        )
    )
    loop = subprocess.Popen(
        [sys.executable, "-m", "drifthouse", "labels", "join", "-c", str(path), "--since", "all",
         "--every", "1h", "--run-id", RUN],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        assert loop.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = loop.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("late labels:"):
                break
        said = "".join(lines)
        assert "pairs joined in ClickHouse (models: 1)" in said, said + loop.stderr.read()
        assert "next run at" in said
        loop.send_signal(stop)
        out, err = loop.communicate(timeout=60)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    assert loop.returncode == 0, err
    assert f"stopped ({stop.name}) after 1 run" in out
    pairs = int(said.split("late labels: ")[1].split(" pairs")[0].replace(",", ""))
    assert pairs > 0


def test_labels_join_every_says_what_failed_and_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "drifthouse.yaml"
    path.write_text(json.dumps({"store": {"dsn": "http://127.0.0.1:9/"}}))
    assert main(["labels", "join", "-c", str(path), "--every", "1h"]) == 1
    said = " ".join(capsys.readouterr().err.split())
    assert "late label join, run 1" in said
    assert "127.0.0.1:9" in said


def test_labels_join_every_refuses_a_bad_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "drifthouse.yaml"
    path.write_text(json.dumps({}))
    assert main(["labels", "join", "-c", str(path), "--every", "often"]) == 2
    assert "--every must be a duration such as 1h" in capsys.readouterr().err
