from __future__ import annotations

from typing import Any

import pytest

from drifthouse.errors import StoreError
from drifthouse.sinks.schema import load_migrations, migrate, split_statements

TABLES = {
    "metrics",
    "sketches",
    "alerts",
    "predictions",
    "references",
    "silences",
    "merger_state",
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
