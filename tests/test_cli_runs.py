"""``drifthouse runs`` and ``drifthouse runs delete``: the runs of a store, listed and deleted,
on the real embedded engine with rows written by two real replays (and a live worker's)."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drifthouse.app.replay import replay_to_store
from drifthouse.cli import main
from drifthouse.config import load_config
from drifthouse.simulate import Scenario, simulate
from drifthouse.sinks import migrate
from drifthouse.sinks.runs import RUN_TABLES
from drifthouse.sql_output import visible
from tests.cli_process import run_cli, store_held
from tests.sinks.conftest import HttpClickHouse

RUN_A, RUN_B = "backfill-a", "backfill-b"
TABLES = [t.name for t in RUN_TABLES]
#: Tables whose rows a replay writes once per key (the late join rewrites metrics rows).
WRITTEN_ONCE = ["alerts", "labels", "label_predictions"]
#: Run ids SQL built by string formatting would choke on (see tests/test_security.py).
NASTY = [
    "'; DROP TABLE metrics; --",
    "new\nline\r\ttab",
    "quo\"te's \\ back\\\\slash",
    "{run:String} %s ${x}",
]


@dataclass(frozen=True)
class Replays:
    """A database filled by two replays: what each stored, per table."""

    database: str
    stored: dict[str, dict[str, int]]


def _settings(dsn: str, database: str) -> dict[str, Any]:
    return {
        "store": {"dsn": dsn, "database": database},
        "windows": [{"size": "1h"}, {"size": "6h", "from": "1h"}],
        # Labels up to four hours late against a two-hour horizon: the late label join's
        # tables (labels, label_predictions, label_panes) get rows too.
        "metrics": {"late_labels": True, "label_horizon": "2h", "auto_reference_span": "12h"},
        "rules": [{"name": "drift", "metric": "psi", "when": "value > 0.1", "severity": "warning"}],
        "routes": [{"match": {"severity": "warning"}, "receivers": ["log"]}],
        "receivers": {"log": {"type": "console"}},
    }


def _columns(client: Any, database: str, table: str) -> list[str]:
    result = client.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} "
        "ORDER BY position",
        parameters={"db": database, "t": table},
    )
    return [row[0] for row in result.result_rows]


def _counts(client: Any, database: str) -> dict[tuple[str, str], int]:
    """Rows per (table, run id), one per key, counted here with a query of the test's own (its
    distinct sorting keys: the count does not change when a background merge runs)."""
    out: dict[tuple[str, str], int] = {}
    for table in TABLES:
        key = client.query(
            "SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": database, "t": table},
        ).result_rows[0][0]
        result = client.query(
            f"SELECT run_id, count() FROM (SELECT DISTINCT {key} FROM `{database}`.`{table}`) "
            "GROUP BY run_id"
        )
        for run_id, n in result.result_rows:
            out[(table, run_id)] = int(n)
    return out


@pytest.fixture(scope="module")
def replays(
    ch_dsn: str, ch_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replays]:
    folder = tmp_path_factory.mktemp("runs")
    scenario = Scenario.demo(days=1.5, rate_per_min=4, reference_hours=12)
    with open(folder / "events.jsonl", "wb") as ev, open(folder / "labels.jsonl", "wb") as lb:
        for r in simulate(scenario, seed=3, label_delay_min=(5, 240)):
            (lb if r.topic == "labels" else ev).write(r.value + b"\n")
    database = f"runs_{uuid.uuid4().hex[:10]}"
    path = folder / "drifthouse.yaml"
    path.write_text(json.dumps(_settings(ch_dsn, database)))
    config = load_config(path)
    stored = {}
    for run_id in (RUN_A, RUN_B):
        done = replay_to_store(
            config,
            source=f"file:{folder / 'events.jsonl'}",
            labels=f"file:{folder / 'labels.jsonl'}",
            run_id=run_id,
        )
        stored[run_id] = dict(done.written.stored)
    yield Replays(database, stored)
    ch_client.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


@pytest.fixture
def store(
    replays: Replays, ch_dsn: str, ch_client: Any, tmp_path: Path
) -> Iterator[tuple[Path, str]]:
    """A copy of the replays' database (each test may delete), plus the rows a live worker
    would have written (the rows of run B under run id ``live``); its config file."""
    database = f"runs_{uuid.uuid4().hex[:10]}"
    migrate(ch_client, database)
    for table in TABLES:
        cols = ", ".join(f"`{c}`" for c in _columns(ch_client, replays.database, table))
        ch_client.command(
            f"INSERT INTO `{database}`.`{table}` ({cols}) "
            f"SELECT {cols} FROM `{replays.database}`.`{table}`"
        )
        ch_client.command(
            f"INSERT INTO `{database}`.`{table}` ({cols}) "
            f"SELECT * REPLACE ('live' AS run_id) FROM "
            f"(SELECT {cols} FROM `{replays.database}`.`{table}` WHERE run_id = {{b:String}})",
            parameters={"b": RUN_B},
        )
    path = tmp_path / "drifthouse.yaml"
    path.write_text(json.dumps({"store": {"dsn": ch_dsn, "database": database}}))
    yield path, database
    ch_client.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


def _runs_json(capsys: pytest.CaptureFixture[str], path: Path) -> dict[str, dict[str, Any]]:
    assert main(["runs", "-c", str(path), "--format", "json"]) == 0
    return {run["run_id"]: run for run in json.loads(capsys.readouterr().out)}


def test_runs_lists_both_replays_with_their_counts(
    replays: Replays,
    store: tuple[Path, str],
    ch_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, database = store
    runs = _runs_json(capsys, path)
    counted = _counts(ch_client, database)
    assert set(runs) == {RUN_A, RUN_B, "live", "reference"}
    for run_id in (RUN_A, RUN_B):
        run, stored = runs[run_id], replays.stored[run_id]
        assert run["kind"] == "run"
        assert run["models"] == ["eta", "fraud"]
        # Every run table got rows from the replay: one per key, at most what the replay
        # stored (the late join rewrote some windows), exactly that where nothing is rewritten.
        assert set(run["rows"]) == set(TABLES), run["rows"]
        for table in TABLES:
            assert run["rows"][table] == counted[(table, run_id)], table
            assert 0 < run["rows"][table] <= stored[table], table
        for table in WRITTEN_ONCE:
            assert run["rows"][table] == stored[table], table
        assert run["first"] == "2026-01-01T00:00:00Z"  # the first hour's windows
        assert run["last"].startswith("2026-01-02T1")  # a day and a half later
        assert run["written_first"] <= run["written_last"]
    # The replays' automatic references, one row per key however often written.
    assert runs["reference"]["kind"] == "reference"
    assert runs["reference"]["rows"] == {"sketches": counted[("sketches", "reference")]}
    assert runs["live"]["kind"] == "live"
    assert runs["live"]["rows"] == runs[RUN_B]["rows"]
    assert next(iter(runs)) == "live"  # the live run first


def test_runs_table_names_every_run(
    store: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    path, _ = store
    assert main(["runs", "-c", str(path)]) == 0
    said = capsys.readouterr().out
    for text in (RUN_A, RUN_B, "live", "reference", "eta, fraud", "metrics", "window_states"):
        assert text in said, (text, said)
    assert "4 runs" in said


def test_delete_removes_one_run_from_every_table_and_keeps_the_others(
    ch_client: Any, store: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, database = store
    before = _counts(ch_client, database)
    assert all((t, RUN_A) in before for t in TABLES)
    assert main(["runs", "delete", RUN_A, "-c", str(path), "--yes"]) == 0
    said = capsys.readouterr().out
    assert f"deleted run {RUN_A}" in said
    after = _counts(ch_client, database)
    assert not [key for key in after if key[1] == RUN_A]
    assert after == {key: n for key, n in before.items() if key[1] != RUN_A}


def test_delete_without_yes_says_what_it_would_delete_and_deletes_nothing(
    ch_client: Any, store: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, database = store
    before = _counts(ch_client, database)
    assert main(["runs", "delete", RUN_A, "-c", str(path)]) == 2
    captured = capsys.readouterr()
    said = " ".join((captured.out + captured.err).split())
    assert f"{before[('metrics', RUN_A)]:,}" in said  # the counts per table
    assert "label_panes" in said
    assert "nothing deleted" in said
    assert "--yes" in said
    assert _counts(ch_client, database) == before


def test_an_unknown_run_id_is_an_error_and_deletes_nothing(
    ch_client: Any, store: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, database = store
    before = _counts(ch_client, database)
    assert main(["runs", "delete", "backfill-z", "-c", str(path), "--yes"]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "no run 'backfill-z'" in said
    assert _counts(ch_client, database) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--yes"], "--live", id="live-needs-its-flag"),
        pytest.param([], "--live", id="live-without-yes"),
    ],
)
def test_the_live_run_needs_its_own_flag(
    ch_client: Any,
    store: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    path, database = store
    before = _counts(ch_client, database)
    assert main(["runs", "delete", "live", "-c", str(path), *args]) == 2
    assert message in capsys.readouterr().err
    assert _counts(ch_client, database) == before
    assert main(["runs", "delete", "live", "-c", str(path), "--yes", "--live"]) == 0
    after = _counts(ch_client, database)
    assert after == {key: n for key, n in before.items() if key[1] != "live"}


def test_the_reference_histograms_are_not_a_run_to_delete(
    ch_client: Any, store: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, database = store
    before = _counts(ch_client, database)
    assert main(["runs", "delete", "reference", "-c", str(path), "--yes", "--live"]) == 2
    assert "reference histograms" in capsys.readouterr().err
    assert _counts(ch_client, database) == before


@pytest.mark.parametrize("run_id", NASTY)
def test_run_ids_are_bound_as_parameters(
    ch_client: Any, store: tuple[Path, str], capsys: pytest.CaptureFixture[str], run_id: str
) -> None:
    path, database = store
    cols = ", ".join(f"`{c}`" for c in _columns(ch_client, database, "metrics"))
    ch_client.command(
        f"INSERT INTO `{database}`.metrics ({cols}) SELECT * REPLACE ({{r:String}} AS run_id) "
        f"FROM (SELECT {cols} FROM `{database}`.metrics WHERE run_id = {{a:String}} LIMIT 5)",
        parameters={"r": run_id, "a": RUN_A},
    )
    before = _counts(ch_client, database)
    runs = _runs_json(capsys, path)
    assert runs[run_id]["rows"] == {"metrics": 5}
    assert main(["runs", "-c", str(path)]) == 0
    assert visible(run_id) in capsys.readouterr().out  # control characters shown escaped
    assert main(["runs", "delete", run_id, "-c", str(path), "--yes"]) == 0
    assert _counts(ch_client, database) == {k: n for k, n in before.items() if k[1] != run_id}


def test_an_empty_store_has_no_runs(
    ch_dsn: str, ch_database: tuple[Any, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client, database = ch_database
    migrate(client, database)
    path = tmp_path / "drifthouse.yaml"
    path.write_text(json.dumps({"store": {"dsn": ch_dsn, "database": database}}))
    assert main(["runs", "-c", str(path)]) == 0
    assert "no runs" in capsys.readouterr().out
    assert main(["runs", "-c", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.fixture
def http_clickhouse(tmp_path: Path) -> Iterator[HttpClickHouse]:
    server = HttpClickHouse(tmp_path / "engine")
    server.start()
    yield server
    server.stop()


def test_runs_over_an_http_clickhouse(
    http_clickhouse: HttpClickHouse,
    store: tuple[Path, str],
    ch_client: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through clickhouse-connect's HTTP client, as against a server (the front drops URL
    settings: the delete must wait for its mutation by itself)."""
    from drifthouse.sinks.store import open_store

    _, source = store
    client = open_store(http_clickhouse.dsn, "drifthouse")
    try:
        migrate(client, "drifthouse")
        for table in TABLES:
            result = ch_client.query(
                f"SELECT * FROM `{source}`.`{table}` WHERE run_id IN ({{a:String}}, 'live') "
                "LIMIT 30 BY run_id",
                parameters={"a": RUN_A},
            )
            client.insert(table, result.result_rows, column_names=result.column_names)
        before = _counts(client, "drifthouse")
    finally:
        client.close()
    path = tmp_path / "drifthouse.yaml"
    path.write_text(json.dumps({"store": {"dsn": http_clickhouse.dsn}}))
    runs = _runs_json(capsys, path)
    assert sum(sum(r["rows"].values()) for r in runs.values()) == sum(before.values())
    assert set(runs) == {RUN_A, "live"}
    assert main(["runs", "delete", RUN_A, "-c", str(path), "--yes"]) == 0
    client = open_store(http_clickhouse.dsn, "drifthouse")
    try:
        after = _counts(client, "drifthouse")
    finally:
        client.close()
    assert after == {k: n for k, n in before.items() if k[1] != RUN_A}
    assert after


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, columns=200)


def test_runs_asks_the_worker_that_holds_the_embedded_store(tmp_path: Path) -> None:
    """A live worker on the embedded engine holds its folder: the list comes from the worker's
    SQL endpoint; a delete is refused, saying why, and deletes nothing."""
    scenario = Scenario.demo(days=0.5, rate_per_min=4, reference_hours=4)
    with open(tmp_path / "events.jsonl", "wb") as ev:
        for r in simulate(scenario, seed=3, labels=False):
            ev.write(r.value + b"\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = _settings("", "drifthouse")
    settings["store"] = {"path": "./data", "serve_port": port}
    (tmp_path / "drifthouse.yaml").write_text(json.dumps(settings))
    for run_id in (RUN_A, RUN_B):
        done = _cli(
            "replay", "-c", "drifthouse.yaml", "--source", "file:events.jsonl",
            "--run-id", run_id, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    alone = _cli("runs", "-c", "drifthouse.yaml", "--format", "json", cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    with store_held(tmp_path):
        held = _cli("runs", "-c", "drifthouse.yaml", "--format", "json", cwd=tmp_path)
        assert held.returncode == 0, held.stderr
        assert json.loads(held.stdout) == json.loads(alone.stdout)
        assert {r["run_id"] for r in json.loads(held.stdout)} == {RUN_A, RUN_B, "reference"}
        refused = _cli("runs", "delete", RUN_A, "-c", "drifthouse.yaml", "--yes", cwd=tmp_path)
        assert refused.returncode == 1
        assert "holds the embedded store" in refused.stderr
        assert "Cannot lock file" not in refused.stderr
    after = _cli("runs", "-c", "drifthouse.yaml", "--format", "json", cwd=tmp_path)
    assert json.loads(after.stdout) == json.loads(alone.stdout)
