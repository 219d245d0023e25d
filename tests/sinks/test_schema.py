from __future__ import annotations

import os
from typing import Any

import pytest

from drifthouse.errors import StoreError
from drifthouse.sinks.schema import (
    expected_tables,
    load_migrations,
    migrate,
    migrate_report,
    split_statements,
)
from drifthouse.sinks.tables import TABLES as TABLES_BY_ROW
from tests.sinks.old_store import schema_at

TABLES = {
    "metrics",
    "sketches",
    "alerts",
    "predictions",
    "references",
    "silences",
    "merger_state",
    "alert_state",
    "schema_migrations",
}


def _tables(client: Any, database: str) -> dict[str, str]:
    rows = client.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
        parameters={"db": database},
    ).result_rows
    return dict(rows)


def test_migrate_creates_every_table_and_view(store_client: Any, database: str) -> None:
    tables = _tables(store_client, database)
    assert set(tables) >= TABLES
    assert {"metrics_latest", "sketches_latest", "alerts_latest"} <= set(tables)
    assert "ReplacingMergeTree(computed_at)" in tables["metrics"]
    assert "TTL inserted_at + toIntervalDay(30)" in tables["predictions"]
    assert "TTL" not in tables["metrics"]


def test_migrate_is_idempotent(store_client: Any, database: str) -> None:
    assert migrate(store_client, database) == []
    assert migrate(store_client, database) == []
    versions = store_client.query(
        f"SELECT version FROM `{database}`.schema_migrations FINAL ORDER BY version"
    ).result_rows
    assert [v for (v,) in versions] == [m.version for m in load_migrations()]


def test_ttls_follow_the_configuration(store_client: Any, database: str) -> None:
    migrate(store_client, database, {"predictions": 7, "metrics": 400})
    tables = _tables(store_client, database)
    assert "toIntervalDay(7)" in tables["predictions"]
    assert "TTL inserted_at + toIntervalDay(400)" in tables["metrics"]
    migrate(store_client, database, {})
    tables = _tables(store_client, database)
    assert "TTL" not in tables["predictions"]
    assert "TTL" not in tables["metrics"]


def test_unknown_ttl_table_is_a_clear_error(store_client: Any, database: str) -> None:
    with pytest.raises(StoreError, match="unknown tables"):
        migrate(store_client, database, {"metricz": 3})


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param("SELECT 1;\nSELECT 2;\n", ["SELECT 1", "SELECT 2"], id="two"),
        pytest.param("-- a comment; with a semicolon\nSELECT 1", ["SELECT 1"], id="comment"),
        pytest.param("SELECT 'a;b'", ["SELECT 'a;b'"], id="inline-semicolon"),
    ],
)
def test_split_statements(sql: str, expected: list[str]) -> None:
    assert split_statements(sql) == expected


def test_partition_keys_are_those_the_sink_splits_by(store_client: Any, database: str) -> None:
    """The sink splits inserts by TableSpec.partition: it must be the table's own key."""
    keys = dict(
        store_client.query(
            "SELECT name, partition_key FROM system.tables WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
    )
    for spec in TABLES_BY_ROW.values():
        assert keys[spec.name] == spec.partition_key, spec.name
    assert keys["predictions"] == "toYYYYMM(ts)"  # by month: years of history, few parts


@pytest.mark.parametrize(
    "dropped",
    [
        pytest.param(["metrics"], id="metrics"),
        pytest.param(["predictions", "alerts_latest"], id="predictions-and-a-view"),
        pytest.param(["merger_state"], id="a-later-migration"),
    ],
)
def test_migrate_creates_again_a_table_that_is_missing(
    store_client: Any, database: str, dropped: list[str]
) -> None:
    for name in dropped:
        store_client.command(f"DROP TABLE `{database}`.`{name}`")
    report = migrate_report(store_client, database)
    assert report.applied == []
    assert sorted(report.recreated) == sorted(dropped)
    tables = _tables(store_client, database)
    assert set(expected_tables(database)) <= set(tables)
    assert "predictions_by_month" not in tables
    columns = {
        name
        for (name,) in store_client.query(
            f"SELECT name FROM system.columns WHERE database = '{database}' AND table = 'metrics'"
        ).result_rows
    }
    assert "inserted_at" in columns  # brought to the latest version
    assert migrate_report(store_client, database).recreated == []


def test_the_prediction_log_moves_to_partitions_by_month(store_client: Any) -> None:
    """A store migrated before version 3: its prediction log by day keeps its rows."""
    database = f"upgrade_{os.getpid()}"
    store_client.command(f"DROP DATABASE IF EXISTS `{database}`")
    schema_at(store_client, database, 2)
    try:
        store_client.command(
            f"INSERT INTO `{database}`.predictions (ts, model, model_version, event_id, features, "
            "prediction, latency_ms, status, segment, kept_because, sample_rate) VALUES "
            "('2023-01-01 10:00:00', 'fraud', '1', 'e1', '{}', '0.5', 1.0, 200, '{}', 'sample', 1.0), "
            "('2025-06-01 10:00:00', 'fraud', '1', 'e2', '{}', '0.5', 1.0, 200, '{}', 'sample', 1.0)"
        )
        assert migrate(store_client, database) == [m.version for m in load_migrations()[2:]]
        tables = _tables(store_client, database)
        assert "PARTITION BY toYYYYMM(ts)" in tables["predictions"]
        assert "predictions_by_month" not in tables
        got = store_client.query(
            f"SELECT event_id FROM `{database}`.predictions FINAL ORDER BY ts"
        ).result_rows
        assert got == [("e1",), ("e2",)]
    finally:
        store_client.command(f"DROP DATABASE IF EXISTS `{database}`")


def test_retention_counts_from_when_rows_were_written(store_client: Any, database: str) -> None:
    """A replay of three-year-old predictions, with a 30-day TTL: kept after a merge."""
    migrate(store_client, database, {"predictions": 30, "metrics": 30})
    store_client.command(
        f"INSERT INTO `{database}`.predictions (ts, model, model_version, event_id, features, "
        "prediction, latency_ms, status, segment, kept_because, sample_rate) VALUES "
        "(now() - INTERVAL 3 YEAR, 'fraud', '1', 'old', '{}', '0.5', 1.0, 200, '{}', 'sample', 1.0)"
    )
    store_client.command(
        f"INSERT INTO `{database}`.predictions (ts, model, model_version, event_id, features, "
        "prediction, latency_ms, status, segment, kept_because, sample_rate, inserted_at) VALUES "
        "(now(), 'fraud', '1', 'expired', '{}', '0.5', 1.0, 200, '{}', 'sample', 1.0, "
        "now() - INTERVAL 31 DAY)"
    )
    store_client.command(f"OPTIMIZE TABLE `{database}`.predictions FINAL")
    got = store_client.query(f"SELECT event_id FROM `{database}`.predictions").result_rows
    assert got == [("old",)]
