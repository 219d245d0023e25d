"""The store side of ``drifthouse runs`` (``drifthouse.sinks.runs``): which tables hold runs, the
delete statement on one server and on a cluster, and a store migrated by an older release.

The CLI, with rows from real replays, is ``tests/test_cli_runs.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from drifthouse.errors import StoreError, UsageError
from drifthouse.sinks.runs import RUN_TABLES, count_run, delete_run, delete_statement, list_runs

CLUSTER = "dh_cluster"


def test_every_table_with_a_run_id_is_a_run_table(store_client: Any, database: str) -> None:
    """What the migrations create: a table added later with a run_id is listed and deleted
    too, or this fails."""
    result = store_client.query(
        "SELECT c.table FROM system.columns AS c JOIN system.tables AS t "
        "ON c.database = t.database AND c.table = t.name "
        "WHERE c.database = {db:String} AND c.name = 'run_id' AND t.engine LIKE '%MergeTree'",
        parameters={"db": database},
    )
    assert {row[0] for row in result.result_rows} == {t.name for t in RUN_TABLES}


def test_the_run_tables_have_the_columns_read(store_client: Any, database: str) -> None:
    for table in RUN_TABLES:
        result = store_client.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}",
            parameters={"db": database, "t": table.name},
        )
        columns = {row[0] for row in result.result_rows}
        assert {table.start, table.end, "model", "run_id", "inserted_at"} <= columns, table


def _metric(run_id: str, hour: int) -> dict[str, Any]:
    return {
        "window_start": 1_767_225_600_000 + hour * 3_600_000,
        "window_end": 1_767_225_600_000 + (hour + 1) * 3_600_000,
        "window": "1h",
        "model": "fraud",
        "model_version": "1",
        "feature": "amount",
        "segment": "",
        "metric": "psi",
        "value": 0.1,
        "n": 10,
        "run_id": run_id,
        "computed_at": 1,
    }


def _insert_metrics(client: Any, rows: list[dict[str, Any]]) -> None:
    names = list(rows[0])
    client.insert("metrics", [[r[n] for n in names] for r in rows], column_names=names)


def test_a_window_written_twice_counts_once(store_client: Any, database: str) -> None:
    _insert_metrics(store_client, [_metric("a", 0), _metric("a", 1)])
    _insert_metrics(store_client, [_metric("a", 1), _metric("b", 1)])  # a rewrite of hour 1
    assert count_run(store_client, database, "a") == {"metrics": 2}
    (run,) = list_runs(store_client, database, "a")
    assert (run.first_ms, run.last_ms) == (1_767_225_600_000, 1_767_225_600_000 + 2 * 3_600_000)
    assert run.models == ("fraud",)
    assert delete_run(store_client, database, "a") == {"metrics": 2}
    assert count_run(store_client, database, "a") == {}
    assert count_run(store_client, database, "b") == {"metrics": 1}


def test_an_unknown_run_is_refused(store_client: Any, database: str) -> None:
    _insert_metrics(store_client, [_metric("a", 0)])
    with pytest.raises(UsageError, match="no run 'nope' in database"):
        delete_run(store_client, database, "nope")
    assert count_run(store_client, database, "a") == {"metrics": 1}


def test_a_store_without_some_run_tables_still_lists_its_runs(
    store_client: Any, database: str
) -> None:
    """A store migrated by a release before window_states (schema version 6)."""
    store_client.command(f"DROP TABLE `{database}`.window_states SYNC")
    _insert_metrics(store_client, [_metric("a", 0)])
    assert [r.rows for r in list_runs(store_client, database)] == [{"metrics": 1}]
    assert delete_run(store_client, database, "a") == {"metrics": 1}


def test_an_empty_database_has_no_runs(store_client: Any) -> None:
    assert list_runs(store_client, "no_such_database") == []


@pytest.mark.parametrize("table", [t.name for t in RUN_TABLES])
def test_the_delete_runs_on_every_host_of_a_cluster(store_client: Any, table: str) -> None:
    """Rendered ON CLUSTER like the migrations, the run id still a parameter; ClickHouse's own
    parser reads it (the embedded engine runs no cluster DDL, see test_cluster_ddl.py)."""
    one = delete_statement("dh", table)
    statement = delete_statement("dh", table, CLUSTER)
    assert statement == one.replace(f"`{table}` DELETE", f"`{table}` ON CLUSTER '{CLUSTER}' DELETE")
    assert "{run:String}" in statement
    formatted = store_client.query(
        "SELECT formatQuery({q:String})", parameters={"q": statement}
    ).result_rows[0][0]
    assert f"ON CLUSTER {CLUSTER}" in formatted
    assert "mutations_sync = 2" in formatted


def test_only_run_tables_are_deleted_from() -> None:
    with pytest.raises(StoreError, match="no run_id column"):
        delete_statement("dh", "predictions")


def test_the_delete_waits_where_mutations_run_in_the_background(
    store_client: Any, database: str
) -> None:
    """A server runs a mutation in the background by default (``mutations_sync = 0``, where the
    embedded engine waits): the delete returns only once the rows are gone all the same."""
    for part in range(8):  # parts enough that the mutation is still running when asked
        store_client.command(
            f"INSERT INTO `{database}`.metrics (window_start, window_end, window, model, "
            "model_version, feature, segment, metric, value, n, run_id, computed_at) "
            "SELECT toDateTime64(1767225600 + number * 60, 3, 'UTC'), "
            "toDateTime64(1767225660 + number * 60, 3, 'UTC'), '1m', 'fraud', '1', "
            "toString(number % 97), '', 'psi', 0.1, 1, if(number % 2 = 0, 'a', 'b'), "
            f"toDateTime64({part}, 3, 'UTC') FROM numbers(100000)"
        )
    store_client.set_client_setting("mutations_sync", 0)
    try:
        deleted = delete_run(store_client, database, "a")
        left = count_run(store_client, database, "a")
    finally:
        store_client.set_client_setting("mutations_sync", 1)
    assert deleted == {"metrics": 50_000}
    assert left == {}
    assert count_run(store_client, database, "b") == {"metrics": 50_000}
