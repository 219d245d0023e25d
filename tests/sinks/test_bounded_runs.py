"""Bounded runs (``drifthouse replay``) and the store: history of any span lands, rows the store
refuses for good are named and make the run fail, and the summary counts what the store took.

The CLI runs in a subprocess: it opens its own embedded store, and one process may hold only
one embedded data folder at a time.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.cli_process import run_cli

DAY_MS = 86_400_000
#: 2023-01-01T00:00:00Z: three years of daily events end before today.
START_MS = 1_672_531_200_000


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, columns=400)


def _write_history(path: Path, days: int, *, errors_every: int = 0) -> None:
    """One prediction a day for ``days`` days, every ``errors_every``-th a 500."""
    with path.open("w") as fh:
        for day in range(days):
            status = 500 if errors_every and day % errors_every == 0 else 200
            event = {
                "ts": START_MS + day * DAY_MS + 3_600_000,
                "model": "fraud",
                "model_version": "1",
                "event_id": f"e{day}",
                "features": {"amount": float(day % 37), "country": "DE" if day % 2 else "FR"},
                "prediction": (day % 10) / 10,
                "latency_ms": 5.0,
                "status": status,
            }
            fh.write(json.dumps(event) + "\n")


def _workspace(tmp_path: Path) -> Path:
    config = {
        "store": {"path": "./data", "spool_dir": "./spool"},
        "windows": [{"size": "1d"}],
        # Every prediction logged: the prediction log spans the whole history.
        "models": {"fraud": {"sample_rate": 1.0}},
    }
    (tmp_path / "drifthouse.yaml").write_text(json.dumps(config))
    return tmp_path


def _query(cwd: Path, sql: str) -> list[list[str]]:
    result = _cli("sql", "-c", "drifthouse.yaml", sql, cwd=cwd)
    assert result.returncode == 0, result.stderr
    rows = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    return rows


def test_three_years_of_history_land_with_the_prediction_log(tmp_path: Path) -> None:
    cwd = _workspace(tmp_path)
    days = 3 * 365
    _write_history(cwd / "history.jsonl", days)
    result = _cli(
        "replay", "-c", "drifthouse.yaml", "--source", "file:history.jsonl", "--run-id", "h1",
        cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ((windows, first, last, fewest, series, logged, sketch_windows, metrics, sketches),) = _query(
        cwd,
        "SELECT uniqExact(window_start), min(toDate(window_start)), max(toDate(window_start)), "
        # every series of a window metric has a row in every window after the first: the model has
        # no profile, so its first day is its automatic reference (quality, no drift, there)
        "(SELECT min(c) FROM (SELECT uniqExact(window_start) AS c FROM metrics FINAL "
        "WHERE run_id = 'h1' AND metric != 'change_detected' AND window_start >= '2023-01-02' "
        # drift attribution is written for drifted windows only (docs/statistics.md)
        "AND metric NOT IN ('psi_contribution', 'js_contribution', 'mass_shift', "
        "'psi_segment_share') "
        "GROUP BY metric, feature, segment)), "
        "(SELECT uniqExact(metric, feature, segment) FROM metrics WHERE run_id = 'h1'), "
        "(SELECT count() FROM predictions FINAL WHERE model = 'fraud'), "
        "(SELECT uniqExact(window_start) FROM sketches FINAL WHERE run_id = 'h1'), "
        "(SELECT count() FROM metrics WHERE run_id = 'h1'), "
        "(SELECT count() FROM sketches WHERE run_id = 'h1') "
        "FROM metrics FINAL WHERE run_id = 'h1' AND window = '1d' AND metric = 'events'",
    )
    assert (int(windows), first, last) == (days, "2023-01-01", "2025-12-30")
    assert int(fewest) == days - 1
    assert int(series) >= 10  # events, latencies, error rates, ...
    assert int(logged) == days
    assert int(sketch_windows) == days
    # The summary counts what the store acknowledged (rewrites of a key included, which merges
    # may have collapsed since): never fewer rows than the store holds.
    assert f"predictions {days:,}" in result.stdout
    for table, raw in (("metrics", metrics), ("sketches", sketches)):
        printed = re.search(rf"{table} ([\d,]+)", result.stdout)
        assert printed is not None, result.stdout
        assert int(printed.group(1).replace(",", "")) >= int(raw) > 0
    assert list((cwd / "spool").iterdir()) == []


_ALTER = """
import sys, clickhouse_connect
client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
client.command(sys.argv[2])
client.close()
"""


def test_rows_the_store_refuses_fail_the_run_and_the_rest_lands(tmp_path: Path) -> None:
    """A constraint the log's 5xx rows break: they are named and kept, the run exits 1, and every
    other row (the later days' too) is stored."""
    cwd = _workspace(tmp_path)
    days = 200
    _write_history(cwd / "history.jsonl", days, errors_every=70)  # days 0, 70 and 140
    created = _cli("migrate", "-c", "drifthouse.yaml", cwd=cwd)
    assert created.returncode == 0, created.stderr
    altered = subprocess.run(
        [
            sys.executable, "-c", _ALTER, str(cwd / "data"),
            "ALTER TABLE drifthouse.predictions ADD CONSTRAINT no_errors CHECK status < 500",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert altered.returncode == 0, altered.stderr
    result = _cli(
        "replay", "-c", "drifthouse.yaml", "--source", "file:history.jsonl", "--run-id", "bad",
        cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    error = " ".join(result.stderr.split())
    assert "predictions: 3 rows refused" in error
    assert "no_errors" in error
    assert "VIOLATED_CONSTRAINT" in error
    assert ".predictions.rejected" in error
    assert f"predictions {days - 3:,}" in result.stdout  # only what the store took
    ((logged, errors, windows),) = _query(
        cwd,
        "SELECT count(), countIf(status >= 500), (SELECT uniqExact(window_start) FROM metrics "
        "FINAL WHERE run_id = 'bad' AND metric = 'events' AND window = '1d') "
        "FROM predictions FINAL",
    )
    assert (int(logged), int(errors), int(windows)) == (days - 3, 0, days)
    assert [p.suffix for p in (cwd / "spool").iterdir()] == [".rejected"]
