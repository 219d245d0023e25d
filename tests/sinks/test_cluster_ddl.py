"""Migrations on a ClickHouse cluster (``store.cluster``, docs/operations.md "A ClickHouse cluster").

No ClickHouse server or Keeper runs here, and the embedded engine runs neither ``ON CLUSTER``
(``Replicated DDL queries are disabled``, even with a cluster in its configuration) nor a
``Replicated*MergeTree`` table (``Can't create replicated table without ZooKeeper``). So these
tests check every statement :func:`migrate` sends, recorded by a client that runs nothing, and
parse each with the embedded engine's own parser (``formatQuery``): the DDL is checked as
rendered, not against a live cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from drifthouse.errors import StoreError
from drifthouse.sinks.cluster import on_cluster
from drifthouse.sinks.schema import expected_tables, load_migrations, migrate, table_ddl
from drifthouse.sinks.store import call, open_store

CLUSTER = "dh_cluster"
ON = f"ON CLUSTER '{CLUSTER}'"
#: Where each replicated table keeps its replication log in Keeper: one path per shard, database
#: and table; the replica's name from each server's macros.
REPLICATION_ARGS = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
_ENGINE = re.compile(r"ENGINE = (\w+)(?:\(([^)]*)\))?")


class RecordingClient:
    """A client that runs nothing: it records the DDL and answers the few reads migrate makes
    as a fresh database whose tables then all exist would (the prediction log by day first, as
    migration 3 finds it, so its copy, exchange and drop are all sent)."""

    def __init__(
        self, ttl_before: dict[str, str] | None = None, missing: tuple[str, ...] = ()
    ) -> None:
        self.commands: list[str] = []
        self.missing = missing  # the first time the tables are listed: a repair
        self.applied: list[tuple[int]] = []
        self.inserts: list[str] = []
        self.partition_keys = {
            "predictions": "toYYYYMMDD(ts)",
            "predictions_by_month": "toYYYYMM(ts)",
        }
        self.engines = {name: f"X TTL {ttl}" for name, ttl in (ttl_before or {}).items()}

    def command(self, sql: str, **_: Any) -> str:
        self.commands.append(sql)
        keys = self.partition_keys
        names = re.findall(r"`drifthouse`\.`?(\w+)`?", sql)
        if sql.startswith("EXCHANGE TABLES"):
            keys[names[0]], keys[names[1]] = keys[names[1]], keys[names[0]]
        elif sql.startswith("RENAME TABLE"):
            keys[names[1]] = keys.pop(names[0])
        elif sql.startswith("DROP TABLE"):
            keys.pop(names[0], None)
        return ""

    def insert(self, table: str, *_: Any, **__: Any) -> None:
        self.inserts.append(table)

    def query(self, sql: str, parameters: dict[str, str] | None = None) -> SimpleNamespace:
        params = parameters or {}
        if "schema_migrations" in sql:
            rows: list[tuple[Any, ...]] = list(self.applied)
        elif "partition_key" in sql:
            key = self.partition_keys.get(params["t"])
            rows = [] if key is None else [(key,)]
        elif "startsWith" in sql:
            rows = [(name,) for name in self.partition_keys if name.startswith(params["p"])]
        elif "engine_full" in sql:
            rows = list(self.engines.items())
        else:  # the tables present: all of them, but those missing the first time
            rows = [(name,) for name in expected_tables(params["db"]) if name not in self.missing]
            self.missing = ()
        return SimpleNamespace(result_rows=rows)


def _migrate(cluster: str | None, **kwargs: Any) -> RecordingClient:
    client = RecordingClient(**kwargs)
    migrate(client, "drifthouse", {"predictions": 30}, cluster=cluster)
    return client


def _without_cluster(statement: str) -> str:
    """``statement`` with its ON CLUSTER clause and replication arguments taken out again."""
    statement = statement.replace(f" {ON} SYNC", "").replace(f" {ON}", "")
    statement = re.sub(
        r"ENGINE = Replicated(\w+)\(" + re.escape(REPLICATION_ARGS), r"ENGINE = \1(", statement
    )
    return statement.replace("MergeTree()", "MergeTree").replace("MergeTree(, ", "MergeTree(")


def test_every_ddl_statement_runs_on_the_cluster() -> None:
    client = _migrate(CLUSTER, ttl_before={"metrics": "inserted_at + toIntervalDay(9)"})
    ddl = [c for c in client.commands if not c.startswith("INSERT")]
    assert all(ON in statement for statement in ddl), [s for s in ddl if ON not in s]
    # Every kind of statement migrate sends is there, the bookkeeping table's too.
    firsts = {" ".join(statement.split()[:2]) for statement in ddl}
    assert firsts == {"CREATE DATABASE", "CREATE TABLE", "CREATE VIEW", "ALTER TABLE",
                      "RENAME TABLE", "EXCHANGE TABLES", "DROP TABLE"}  # fmt: skip
    assert (
        f"CREATE TABLE IF NOT EXISTS `drifthouse`.schema_migrations {ON} "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        f"ENGINE = ReplicatedReplacingMergeTree({REPLICATION_ARGS}) ORDER BY version"
    ) in ddl
    assert (
        f"ALTER TABLE `drifthouse`.`predictions` {ON} MODIFY TTL inserted_at + toIntervalDay(30) "
        "SETTINGS materialize_ttl_after_modify = 0"
    ) in ddl
    assert f"ALTER TABLE `drifthouse`.`metrics` {ON} REMOVE TTL" in ddl
    # The copy is claimed under a name of this process's own, exchanged with the log, and the
    # old log dropped at once on every host, Keeper path included: free for a table made again.
    (claim,) = [s for s in ddl if s.startswith("RENAME TABLE")]
    claimed = re.fullmatch(
        rf"RENAME TABLE `drifthouse`\.predictions_by_month TO `drifthouse`\.(\w+) {ON}", claim
    )
    assert claimed is not None, claim
    mine = claimed.group(1)
    assert f"EXCHANGE TABLES `drifthouse`.predictions AND `drifthouse`.{mine} {ON}" in ddl
    assert f"DROP TABLE IF EXISTS `drifthouse`.{mine} {ON} SYNC" in ddl
    assert f"DROP TABLE IF EXISTS `drifthouse`.predictions_by_month {ON} SYNC" in ddl
    # Rows are not DDL: an insert into a replicated table reaches the other replicas by itself.
    copies = [c for c in client.commands if c.startswith("INSERT")]
    assert len(copies) == 1
    assert ON not in copies[0]
    assert client.inserts == ["`drifthouse`.schema_migrations"] * len(load_migrations())


def test_every_table_is_replicated_with_the_same_keys() -> None:
    plain = _migrate(None).commands
    replicated = _migrate(CLUSTER).commands
    assert len(plain) == len(replicated)
    creates = 0
    for before, after in zip(plain, replicated, strict=True):
        if after.startswith("CREATE TABLE"):
            creates += 1
            engine = _ENGINE.search(after)
            assert engine is not None, after
            assert engine.group(1).startswith("Replicated"), after
            assert (engine.group(2) or "").startswith(REPLICATION_ARGS), after
        # Columns, version column, PARTITION BY, ORDER BY, TTL: all as on one server (the name
        # each process claims the copy of the prediction log under is its own).
        claimed = re.compile(r"predictions_by_month_claimed_\w+")
        assert claimed.sub("C", _without_cluster(after)) == claimed.sub("C", before)
    assert (
        creates == 1 + 6 + 1 + 1 + 3 + 1 + 1
    )  # bookkeeping, 0001, 0002, 0003, 0004, 0005 (alert_state), 0006 (window_states)
    assert not [
        s for s in replicated if re.search(r"ENGINE = (?!Replicated)\w*MergeTree", s)
    ]  # no plain MergeTree left


def test_the_version_column_stays_the_engines_last_argument() -> None:
    metrics = next(s for s in _migrate(CLUSTER).commands if ".metrics " in s and "CREATE" in s)
    assert f"ENGINE = ReplicatedReplacingMergeTree({REPLICATION_ARGS}, computed_at)" in metrics
    assert "PARTITION BY toYYYYMM(window_start)" in metrics


def test_without_a_cluster_the_ddl_is_the_migrations_own() -> None:
    """No switch, no change: the statements are the migration files' and today's literals."""
    commands = _migrate(None).commands
    assert not [c for c in commands if "ON CLUSTER" in c or "Replicated" in c]
    assert commands[:2] == [
        "CREATE DATABASE IF NOT EXISTS `drifthouse`",
        "CREATE TABLE IF NOT EXISTS `drifthouse`.schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version",
    ]
    from_files = [s for m in load_migrations() for s in m.statements("drifthouse")]
    assert [c for c in commands if c in from_files] == from_files
    for statement in from_files:
        assert on_cluster(statement, None) is statement
    assert commands[-1] == (
        "ALTER TABLE `drifthouse`.`predictions` MODIFY TTL inserted_at + toIntervalDay(30) "
        "SETTINGS materialize_ttl_after_modify = 0"
    )


def test_one_table_on_its_own_is_replicated_too() -> None:
    """The silences table, created without migrating (alerts.silences), follows the switch."""
    assert table_ddl("silences", "dh") == table_ddl("silences", "dh", cluster=None)
    ddl = table_ddl("silences", "dh", cluster=CLUSTER)
    assert ddl.startswith(f"CREATE TABLE IF NOT EXISTS `dh`.silences {ON}\n")
    assert f"ENGINE = ReplicatedReplacingMergeTree({REPLICATION_ARGS}, version)" in ddl


def test_the_rendered_ddl_parses(store_client: Any) -> None:
    """ClickHouse's own parser (the embedded engine's, ``formatQuery``) reads every statement,
    with ON CLUSTER in the place the grammar wants it."""
    for statement in _migrate(CLUSTER).commands:
        formatted = store_client.query(
            "SELECT formatQuery({q:String})", parameters={"q": statement}
        ).result_rows[0][0]
        if not statement.startswith("INSERT"):
            assert f"ON CLUSTER {CLUSTER}" in formatted, formatted


def test_the_embedded_engine_runs_no_cluster_ddl(store_client: Any) -> None:
    """Said plainly rather than faked: the embedded engine has no cluster and no Keeper."""
    with pytest.raises(StoreError):
        migrate(store_client, "never_made", cluster=CLUSTER)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("OPTIMIZE TABLE `d`.metrics FINAL", id="unknown-statement"),
        pytest.param(
            "CREATE TABLE IF NOT EXISTS `d`.t (a UInt8) ENGINE = Memory", id="not-a-merge-tree"
        ),
        pytest.param("CREATE TABLE IF NOT EXISTS `d`.t (a UInt8) ORDER BY a", id="no-engine"),
    ],
)
def test_a_statement_it_cannot_run_on_a_cluster_is_refused(statement: str) -> None:
    """A later migration the renderer does not know fails loudly, never runs on one host."""
    with pytest.raises(StoreError, match="cluster"):
        on_cluster(statement, CLUSTER)
    assert on_cluster(statement, None) is statement


def test_the_silence_store_creates_its_table_on_the_cluster() -> None:
    from drifthouse.alerts.silences import ClickHouseSilenceStore

    client = RecordingClient()
    ClickHouseSilenceStore(client, "dh", cluster=CLUSTER)
    assert client.commands == [
        f"CREATE DATABASE IF NOT EXISTS dh {ON}",
        table_ddl("silences", "dh", cluster=CLUSTER),
    ]
    plain = RecordingClient()
    ClickHouseSilenceStore(plain, "dh")
    assert plain.commands == ["CREATE DATABASE IF NOT EXISTS dh", table_ddl("silences", "dh")]


def test_a_repair_on_the_cluster_leaves_the_moved_prediction_log_alone() -> None:
    """A table dropped by hand is created again ON CLUSTER; the scratch table of migration 3 is
    not, once the prediction log is by month: it would claim the Keeper path the log keeps."""
    client = RecordingClient(missing=("metrics",))
    client.applied = [(m.version,) for m in load_migrations()]
    client.partition_keys = {"predictions": "toYYYYMM(ts)"}
    migrate(client, "drifthouse", {"predictions": 30}, cluster=CLUSTER)
    creates = [c for c in client.commands if c.startswith("CREATE TABLE")]
    assert any(".metrics " in c for c in creates)
    assert not [c for c in client.commands if "predictions_by_month" in c and "DROP" not in c]
    assert client.inserts == []  # nothing applied anew
    # On one server the statements are the files' own, as before this switch existed.
    plain = RecordingClient(missing=("metrics",))
    plain.applied = client.applied
    plain.partition_keys = {"predictions": "toYYYYMM(ts)"}
    migrate(plain, "drifthouse", {"predictions": 30})
    assert any(
        c.startswith("CREATE TABLE IF NOT EXISTS `drifthouse`.predictions_by_month")
        for c in plain.commands
    )


def _refusals(client: Any) -> dict[str, str]:
    """Send each cluster statement; what ClickHouse said to each (never a syntax error)."""
    said: dict[str, str] = {}
    for statement in _migrate(CLUSTER).commands:
        if statement.startswith("INSERT"):
            continue
        with pytest.raises(StoreError) as refused:
            call("sending cluster DDL", client.command, statement)
        said[statement] = str(refused.value)
    return said


#: Why the embedded engine runs none of them: it has no such cluster, no DDL queue, no database
#: for an ALTER (the CREATE DATABASE before it was refused too).
NO_CLUSTER_HERE = re.compile(
    rf"Requested cluster '{CLUSTER}' not found|Replicated DDL queries are disabled"
    r"|Database drifthouse does not exist|Unknown table expression identifier"
)


def test_the_embedded_engine_reads_each_statement_and_runs_none(store_client: Any) -> None:
    """Parsed in full, then refused because there is no cluster: never a syntax error."""
    said = _refusals(store_client)
    assert len(said) == len([c for c in _migrate(CLUSTER).commands if not c.startswith("INSERT")])
    for statement, message in said.items():
        assert "Syntax error" not in message, statement
        assert NO_CLUSTER_HERE.search(message), message


def test_clickhouse_connect_sends_the_statements_as_written(http_clickhouse: Any) -> None:
    """Over HTTP, as to a server: the macros' braces reach ClickHouse untouched (no parameters,
    so clickhouse-connect binds nothing), and the answers are the same."""
    client = open_store(http_clickhouse.dsn, "default")
    try:
        for statement, message in _refusals(client).items():
            assert "Syntax error" not in message, statement
            assert NO_CLUSTER_HERE.search(message), message
    finally:
        client.close()


def test_the_switch_reaches_migrate_from_the_cli_and_the_worker(
    http_clickhouse: Any, tmp_path: Path
) -> None:
    """``drifthouse migrate`` and a worker's start-up both migrate with ``store.cluster``: the
    server they talk to is asked for the cluster (and has none here)."""
    from drifthouse.app.assembly import open_sink
    from drifthouse.config import Config

    store = {"dsn": http_clickhouse.dsn, "database": "clustered", "cluster": CLUSTER}
    (tmp_path / "drifthouse.yaml").write_text(json.dumps({"store": store}))
    done = subprocess.run(
        [sys.executable, "-m", "drifthouse", "migrate", "-c", "drifthouse.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert f"Requested cluster '{CLUSTER}' not found" in done.stdout + done.stderr
    with pytest.raises(StoreError, match=f"Requested cluster '{CLUSTER}' not found"):
        open_sink(Config.model_validate({"store": store, "base_dir": tmp_path}))
