"""The ``bin`` column of ``metrics`` (migration 0007, docs/clickhouse.md): attribution rows of
different bins are different rows for the ReplacingMergeTree, a rewrite of one bin collapses,
and a database migrated before version 7 gets the column and the key with its rows kept."""

from __future__ import annotations

import os
from typing import Any

from drifthouse.rows import MetricRow
from drifthouse.sinks import ClickHouseSink
from drifthouse.sinks.schema import load_migrations, migrate


def _row(bin_: str, value: float, computed_at: int, metric: str = "psi_contribution") -> MetricRow:
    return MetricRow(
        window_start=1_767_225_600_000,
        window_end=1_767_229_200_000,
        window="1h",
        model="fraud",
        model_version="1",
        feature="amount",
        segment="",
        metric=metric,
        value=value,
        n=100,
        run_id="live",
        computed_at=computed_at,
        bin=bin_,
    )


def test_metric_rows_key_on_their_bin() -> None:
    assert _row("[1.0, 2.0)", 0.1, 1).key() != _row("[2.0, 3.0)", 0.1, 1).key()
    assert _row("", 0.1, 1).key() == _row("", 0.2, 2).key()


def _stored(client: Any, database: str) -> list[tuple[str, float]]:
    client.command(f"OPTIMIZE TABLE `{database}`.metrics FINAL")
    rows = client.query(
        f"SELECT bin, value FROM `{database}`.metrics WHERE metric = 'psi_contribution' ORDER BY bin"
    ).result_rows
    return [(b, v) for b, v in rows]


def test_rows_of_different_bins_survive_a_merge(store_client: Any, database: str) -> None:
    sink = ClickHouseSink(store_client, database=database, batch_rows=1)
    sink.write([_row("[1.0, 2.0)", 0.1, 1), _row("[2.0, 3.0)", 0.2, 1)])
    sink.write([_row("[2.0, 3.0)", 0.3, 2)])  # the window written again: its row collapses
    sink.write([_row("", 0.5, 1, metric="psi")])
    sink.flush()
    assert _stored(store_client, database) == [("[1.0, 2.0)", 0.1), ("[2.0, 3.0)", 0.3)]
    key = store_client.query(
        "SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = 'metrics'",
        parameters={"db": database},
    ).result_rows[0][0]
    assert key.endswith(", run_id, bin")
    (n,) = store_client.query(
        f"SELECT count() FROM `{database}`.metrics FINAL WHERE bin = ''"
    ).result_rows[0]
    assert n == 1
    sink.close()


def test_a_database_of_version_6_gets_the_bin_column_and_keeps_its_rows(store_client: Any) -> None:
    database = f"before_bin_{os.getpid()}"
    store_client.command(f"DROP DATABASE IF EXISTS `{database}`")
    store_client.command(f"CREATE DATABASE `{database}`")
    try:
        for migration in load_migrations():
            if migration.version >= 7:
                continue
            for statement in migration.statements(database):
                store_client.command(statement)
        store_client.command(
            f"INSERT INTO `{database}`.metrics (window_start, window_end, window, model, "
            "model_version, feature, segment, metric, value, n, run_id, computed_at) VALUES "
            "(1767225600000, 1767229200000, '1h', 'fraud', '1', 'amount', '', 'psi', 0.5, 100, 'live', 1)"
        )
        store_client.command(
            f"CREATE TABLE IF NOT EXISTS `{database}`.schema_migrations "
            "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
            "ENGINE = ReplacingMergeTree ORDER BY version"
        )
        store_client.insert(
            f"`{database}`.schema_migrations",
            [
                [m.version for m in load_migrations() if m.version < 7],
                [m.name for m in load_migrations() if m.version < 7],
            ],
            column_names=["version", "name"],
            column_oriented=True,
        )
        assert 7 in migrate(store_client, database)
        assert migrate(store_client, database) == []
        rows = store_client.query(
            f"SELECT metric, bin, value FROM `{database}`.metrics FINAL"
        ).result_rows
        assert rows == [("psi", "", 0.5)]
        sink = ClickHouseSink(store_client, database=database, batch_rows=1)
        sink.write([_row("[1.0, 2.0)", 0.1, 1), _row("[2.0, 3.0)", 0.2, 1)])
        sink.flush()
        assert _stored(store_client, database) == [("[1.0, 2.0)", 0.1), ("[2.0, 3.0)", 0.2)]
        sink.close()
    finally:
        store_client.command(f"DROP DATABASE IF EXISTS `{database}`")
