"""Versioned schema migrations for the drifthouse database.

Migrations are the files ``sql/migrations/NNNN_name.sql`` shipped in the package (and linked from
``deploy/clickhouse/migrations``), applied in order by :func:`migrate` at start-up and by
``drifthouse migrate``. Each applied version is recorded in table ``schema_migrations``; every
statement is idempotent (``IF NOT EXISTS``), so two processes migrating at once, or a migration
interrupted half-way, do no harm. To add a migration, drop a new ``NNNN_what.sql`` file beside
the others (statements separated by ``;`` at the end of a line, ``{database}`` for the database).

Retention is configuration, not schema: :func:`migrate` sets each table's TTL from ``ttl_days``
(``{"predictions": 30}`` by default) and removes TTLs no longer configured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from drifthouse.errors import StoreError
from drifthouse.logs import get_logger
from drifthouse.sinks.store import Client, call

__all__ = [
    "DEFAULT_TTL_DAYS",
    "TTL_COLUMNS",
    "Migration",
    "load_migrations",
    "migrate",
    "split_statements",
]

log = get_logger("sinks.schema")

DEFAULT_TTL_DAYS: dict[str, int] = {"predictions": 30}
#: The time column each table's TTL counts from.
TTL_COLUMNS: dict[str, str] = {
    "metrics": "window_start",
    "sketches": "window_start",
    "alerts": "ts",
    "predictions": "ts",
}
_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TTL = re.compile(r"\bTTL (.+?)(?: SETTINGS |$)")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, database: str) -> list[str]:
        return split_statements(self.sql.replace("{database}", database))


def split_statements(sql: str) -> list[str]:
    """Statements of a SQL file: separated by ``;`` at the end of a line, ``--`` comments dropped."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";[ \t]*(?:\n|$)", "\n".join(lines))
    return [part.strip() for part in parts if part.strip()]


def table_ddl(table: str, database: str = "drifthouse") -> str:
    """The ``CREATE TABLE IF NOT EXISTS`` statement of ``table`` from the migrations, for code
    that needs one table without migrating (and so without touching TTLs) the whole store."""
    pattern = re.compile(
        rf"^CREATE TABLE IF NOT EXISTS `{re.escape(database)}`\.{re.escape(table)}\b"
    )
    for migration in load_migrations():
        for statement in migration.statements(database):
            if pattern.match(statement):
                return statement
    raise StoreError(f"no migration creates table {table!r}")


def load_migrations() -> list[Migration]:
    """Every migration shipped in the package, in version order."""
    folder = resources.files("drifthouse.sinks").joinpath("sql", "migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two migrations share a version number: {versions}")
    return found


def migrate(
    client: Client, database: str = "drifthouse", ttl_days: Mapping[str, int] | None = None
) -> list[int]:
    """Create or upgrade the schema in ``database`` and set TTLs; return the versions applied now.

    Safe to call at every start-up: versions already recorded in ``schema_migrations`` are skipped.
    """
    if not _IDENTIFIER.fullmatch(database):
        raise StoreError(
            f"database must be a plain identifier such as 'drifthouse' (got {database!r})"
        )
    ttl = dict(DEFAULT_TTL_DAYS if ttl_days is None else ttl_days)
    unknown = sorted(set(ttl) - set(TTL_COLUMNS))
    if unknown:
        raise StoreError(
            f"store.ttl_days names unknown tables {unknown}; expected some of {sorted(TTL_COLUMNS)}"
        )
    call("creating the database", client.command, f"CREATE DATABASE IF NOT EXISTS `{database}`")
    call(
        "creating schema_migrations",
        client.command,
        f"CREATE TABLE IF NOT EXISTS `{database}`.schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version",
    )
    result = call(
        "reading schema_migrations",
        client.query,
        f"SELECT DISTINCT version FROM `{database}`.schema_migrations",
    )
    done = {int(row[0]) for row in result.result_rows}
    applied: list[int] = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        for statement in migration.statements(database):
            call(
                f"applying migration {migration.version:04d}_{migration.name}",
                client.command,
                statement,
            )
        call(
            "recording a migration",
            client.insert,
            f"`{database}`.schema_migrations",
            [[migration.version], [migration.name]],
            column_names=["version", "name"],
            column_oriented=True,
        )
        applied.append(migration.version)
        log.info(
            "schema.migrated", database=database, version=migration.version, name=migration.name
        )
    _apply_ttls(client, database, ttl)
    return applied


def _apply_ttls(client: Client, database: str, ttl_days: Mapping[str, int]) -> None:
    result = call(
        "reading table definitions",
        client.query,
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
        parameters={"db": database},
    )
    current: dict[str, str | None] = {}
    for name, engine_full in result.result_rows:
        match = _TTL.search(engine_full)
        current[name] = match.group(1).strip() if match else None
    for table, column in TTL_COLUMNS.items():
        days = ttl_days.get(table)
        wanted = f"toDateTime({column}) + toIntervalDay({int(days)})" if days else None
        if current.get(table) == wanted:
            continue
        if wanted is None:
            statement = f"ALTER TABLE `{database}`.`{table}` REMOVE TTL"
        else:
            # Old parts are cleaned by the next merge, not by a mutation over the whole table.
            statement = f"ALTER TABLE `{database}`.`{table}` MODIFY TTL {wanted} SETTINGS materialize_ttl_after_modify = 0"
        call(f"setting the TTL of {table}", client.command, statement)
        log.info("schema.ttl", table=table, ttl_days=days)
