"""A store as an older drifthouse left it, for the tests of upgrades."""

from __future__ import annotations

from typing import Any

from drifthouse.sinks.schema import load_migrations


def schema_at(client: Any, database: str, version: int) -> None:
    """Create ``database`` with the migrations up to ``version`` applied and recorded, as a
    drifthouse of that schema version left it (the prediction log by day before version 3)."""
    client.command(f"CREATE DATABASE `{database}`")
    client.command(
        f"CREATE TABLE `{database}`.schema_migrations (version UInt32, name String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    for migration in load_migrations():
        if migration.version > version:
            break
        for statement in migration.statements(database):
            client.command(statement)
        client.command(
            f"INSERT INTO `{database}`.schema_migrations (version, name) "
            f"VALUES ({migration.version}, '{migration.name}')"
        )
