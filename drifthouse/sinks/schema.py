"""Versioned schema migrations for the drifthouse database.

Migrations are the files ``sql/migrations/NNNN_name.sql`` shipped in the package (and linked from
``deploy/clickhouse/migrations``), applied in order by :func:`migrate` at start-up and by
``drifthouse migrate``. Each applied version is recorded in table ``schema_migrations``; every
statement is idempotent (``IF NOT EXISTS``), so a migration interrupted half-way does no harm.
Several processes may migrate one database at once (merge shards starting together): a new
database gets the prediction log in its latest form (by month) at once, so nothing is moved there;
on an old database the step that moves it checks the result and moves it again when another
process undid it (two ``EXCHANGE TABLES`` at once), and a pass that meets an error such a process causes (a table it
dropped, created or exchanged a moment before) runs again, whole, after a short random pause, a
few times at most; any other error is raised at once. To add a migration, drop a new ``NNNN_what.sql`` file beside
the others (statements separated by ``;`` at the end of a line, ``{database}`` for the database).

Retention is configuration, not schema: :func:`migrate` sets each table's TTL from ``ttl_days``
(``{"predictions": 30}`` by default) and removes TTLs no longer configured. A TTL counts from
column ``inserted_at`` (when the row was written), never from an event time: a replay of old
history is kept as long as live rows.

:func:`migrate` also checks that every table the migrations create exists, and creates again
any that is missing (a ``DROP TABLE`` by hand): every statement is idempotent, so it re-runs them
all in order, which also brings a re-created table up to the latest version.

On a ClickHouse cluster (``cluster``, from ``store.cluster``) every statement runs ``ON CLUSTER``
and every table is created with the ``Replicated`` variant of its engine, the bookkeeping table
too (:func:`drifthouse.sinks.cluster.on_cluster`); without one the statements are the files' own.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources

from drifthouse.errors import StoreError, StoreUnavailable
from drifthouse.logs import get_logger
from drifthouse.sinks.cluster import on_cluster
from drifthouse.sinks.store import Client, call

__all__ = [
    "DEFAULT_TTL_DAYS",
    "TTL_COLUMNS",
    "Migration",
    "MigrationReport",
    "expected_tables",
    "load_migrations",
    "migrate",
    "migrate_report",
    "split_statements",
    "tables_in",
]

log = get_logger("sinks.schema")

DEFAULT_TTL_DAYS: dict[str, int] = {"predictions": 30}
#: The column each table's TTL counts from: when the row was written (migration 0003).
TTL_COLUMNS: dict[str, str] = {
    "metrics": "inserted_at",
    "sketches": "inserted_at",
    "alerts": "inserted_at",
    "predictions": "inserted_at",
    "labels": "inserted_at",
    "label_predictions": "inserted_at",
    "label_panes": "inserted_at",
    "window_states": "inserted_at",
}
_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TTL = re.compile(r"\bTTL (.+?)(?: SETTINGS |$)")
_CREATES = re.compile(r"^CREATE (?:TABLE|VIEW) IF NOT EXISTS `[^`]+`\.`?(\w+)`?")
#: Error codes another process migrating at the same moment can cause: UNKNOWN_TABLE (a table
#: it dropped), TABLE_ALREADY_EXISTS, NO_SUCH_COLUMN_IN_TABLE and UNKNOWN_IDENTIFIER (a table it
#: exchanged). A pass that meets one runs again, at most _ATTEMPTS times; any other error is raised.
_RACE_CODES = frozenset({16, 47, 57, 60})
_ERROR_CODE = re.compile(r"\bCode:\s*(\d+)", re.IGNORECASE)
_ATTEMPTS = 6
#: Tables a migration creates only for a while (see _rebuild_predictions).
_SCRATCH_TABLES = frozenset({"predictions_by_month"})
#: The prefix of a copy of the prediction log one process claimed for its exchange.
_CLAIMED = "predictions_by_month_claimed_"
_UNKNOWN_TABLE = 60


@dataclass
class MigrationReport:
    """What :func:`migrate_report` did: versions applied now, tables that were missing and are back."""

    applied: list[int] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)


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


def table_ddl(table: str, database: str = "drifthouse", *, cluster: str | None = None) -> str:
    """The ``CREATE TABLE IF NOT EXISTS`` statement of ``table`` from the migrations, for code
    that needs one table without migrating (and so without touching TTLs) the whole store;
    its cluster form with ``cluster``."""
    pattern = re.compile(
        rf"^CREATE TABLE IF NOT EXISTS `{re.escape(database)}`\.{re.escape(table)}\b"
    )
    for migration in load_migrations():
        for statement in migration.statements(database):
            if pattern.match(statement):
                return on_cluster(statement, cluster)
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


def expected_tables(database: str = "drifthouse") -> list[str]:
    """Every table and view the migrations leave in ``database``, in creation order."""
    names: list[str] = []
    for migration in load_migrations():
        for statement in migration.statements(database):
            match = _CREATES.match(statement)
            if match and match.group(1) not in _SCRATCH_TABLES and match.group(1) not in names:
                names.append(match.group(1))
    return names


def migrate(
    client: Client,
    database: str = "drifthouse",
    ttl_days: Mapping[str, int] | None = None,
    *,
    cluster: str | None = None,
) -> list[int]:
    """Create or upgrade the schema in ``database`` and set TTLs; return the versions applied now.

    Safe to call at every start-up: versions already recorded in ``schema_migrations`` are
    skipped; tables that are missing are created again (see :func:`migrate_report`). With
    ``cluster`` every statement runs ``ON CLUSTER`` and every table is replicated.
    """
    return migrate_report(client, database, ttl_days, cluster=cluster).applied


def migrate_report(
    client: Client,
    database: str = "drifthouse",
    ttl_days: Mapping[str, int] | None = None,
    *,
    cluster: str | None = None,
) -> MigrationReport:
    """:func:`migrate`, saying also which missing tables it created again."""
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
    report = MigrationReport()
    last: StoreError | None = None
    for attempt in range(_ATTEMPTS):
        if attempt:
            _pause(attempt)
        try:
            _migrate_once(client, database, ttl, cluster, report)
            return report
        except StoreUnavailable:
            raise
        except StoreError as exc:
            if _race_code(exc) is None:
                raise
            log.warning("schema.raced", database=database, attempt=attempt + 1, error=str(exc))
            last = exc
    raise StoreError(
        f"migrating database {database} failed {_ATTEMPTS} times in a row on errors another "
        "process migrating it at the same moment can cause; if none runs, the last error is the "
        f"cause: {last}"
    ) from last


def _race_code(exc: StoreError) -> int | None:
    """The ClickHouse error code of ``exc`` when another process migrating at once can cause it
    (a table it created, dropped or exchanged a moment ago), else None."""
    match = _ERROR_CODE.search(str(exc))
    code = int(match.group(1)) if match else None
    return code if code in _RACE_CODES else None


def _migrate_once(
    client: Client,
    database: str,
    ttl: Mapping[str, int],
    cluster: str | None,
    report: MigrationReport,
) -> None:
    """One pass of :func:`migrate_report`; every step is idempotent, so a pass may run again."""
    call(
        "creating the database",
        client.command,
        on_cluster(f"CREATE DATABASE IF NOT EXISTS `{database}`", cluster),
    )
    call(
        "creating schema_migrations",
        client.command,
        on_cluster(
            f"CREATE TABLE IF NOT EXISTS `{database}`.schema_migrations "
            "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
            "ENGINE = ReplacingMergeTree ORDER BY version",
            cluster,
        ),
    )
    result = call(
        "reading schema_migrations",
        client.query,
        f"SELECT DISTINCT version FROM `{database}`.schema_migrations",
    )
    done = {int(row[0]) for row in result.result_rows}
    for migration in load_migrations():
        if migration.version in done:
            continue
        _apply(client, database, migration, cluster)
        call(
            "recording a migration",
            client.insert,
            f"`{database}`.schema_migrations",
            [[migration.version], [migration.name]],
            column_names=["version", "name"],
            column_oriented=True,
        )
        report.applied.append(migration.version)
        log.info(
            "schema.migrated", database=database, version=migration.version, name=migration.name
        )
    missing = _missing_tables(client, database)
    if missing:
        # Every statement is idempotent: running them all again creates what is missing and
        # brings it to the latest version, and leaves the rest as it is.
        for migration in load_migrations():
            _apply(client, database, migration, cluster)
        still = _missing_tables(client, database)
        if still:
            raise StoreError(
                f"tables {still} of database {database} are missing and could not be created again"
            )
        report.recreated = missing
        log.warning("schema.recreated", database=database, tables=missing)
    if _partition_key(client, database, "predictions") == "toYYYYMMDD(ts)":
        # Moved back to partitions by day by another process that exchanged the tables at once.
        _rebuild_predictions(client, database, cluster)
    _apply_ttls(client, database, ttl, cluster)


def _apply(client: Client, database: str, migration: Migration, cluster: str | None) -> None:
    for statement in migration.statements(database):
        if cluster is not None and _done_scratch(client, database, statement):
            continue
        statement = _final_predictions(client, database, statement)
        call(
            f"applying migration {migration.version:04d}_{migration.name}",
            client.command,
            on_cluster(statement, cluster),
        )
    step = _STEPS.get(migration.version)
    if step is not None:
        step(client, database, cluster)


def _final_predictions(client: Client, database: str, statement: str) -> str:
    """``statement``, or the prediction log's latest form when it creates a log not there yet.

    Migration 1 creates the log partitioned by day and migration 3 moves it to partitions by
    month (copy, ``EXCHANGE TABLES``, drop). A database without the log - a new one, or one whose
    log was dropped by hand - gets it by month at once, ``inserted_at`` included, as the move
    leaves it: no move is ever needed there, so processes migrating a new database together have
    no exchange to undo. A log already there, by day, is left to migration 3 to move.
    """
    match = _CREATES.match(statement)
    if match is None or match.group(1) != "predictions" or "toYYYYMMDD(ts)" not in statement:
        return statement
    if _partition_key(client, database, "predictions") is not None:
        return statement
    by_month = table_ddl("predictions_by_month", database)
    return by_month.replace(f"`{database}`.predictions_by_month", f"`{database}`.predictions", 1)


def _done_scratch(client: Client, database: str, statement: str) -> bool:
    """Whether ``statement`` creates the prediction log's scratch table after the move it served.

    On a cluster, the prediction log by month keeps the Keeper path it was created under,
    ``.../predictions_by_month`` (migration 3 exchanged the tables' names, not their paths): the
    scratch table created again, on a repair, would claim that path and fail on every host.
    """
    match = _CREATES.match(statement)
    return (
        match is not None
        and match.group(1) in _SCRATCH_TABLES
        and _partition_key(client, database, "predictions") == "toYYYYMM(ts)"
    )


def tables_in(client: Client, database: str) -> set[str]:
    """The names of the tables ``database`` has now."""
    result = call(
        "listing tables",
        client.query,
        "SELECT name FROM system.tables WHERE database = {db:String}",
        parameters={"db": database},
    )
    return {row[0] for row in result.result_rows}


def _missing_tables(client: Client, database: str) -> list[str]:
    present = tables_in(client, database)
    return [name for name in expected_tables(database) if name not in present]


def _partition_key(client: Client, database: str, table: str) -> str | None:
    result = call(
        f"reading the partition key of {table}",
        client.query,
        "SELECT partition_key FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    )
    return str(result.result_rows[0][0]) if result.result_rows else None


def _rebuild_predictions(client: Client, database: str, cluster: str | None) -> None:
    """Move the prediction log from partitions by day to partitions by month (migration 3).

    Each step may run again after a crash, or in several processes at once: the copy is repeated
    only while ``predictions`` is still partitioned by day (its key collapses rows copied twice),
    and a process exchanges the log only with a copy it alone holds (see
    :func:`_move_predictions`), so every exchange leaves the log by month and none undoes
    another. A process whose copy another one claimed checks again after a short random pause.
    """
    for attempt in range(_ATTEMPTS):
        if _partition_key(client, database, "predictions") != "toYYYYMMDD(ts)":
            break
        if attempt:
            _pause(attempt)
        _move_predictions(client, database, cluster)
    else:
        raise StoreError(
            f"the prediction log of database {database} is still partitioned by day after "
            f"{_ATTEMPTS} attempts to move it to partitions by month; other processes migrating "
            "at once keep claiming the copy first: stop them and run `drifthouse migrate` alone"
        )
    if _partition_key(client, database, "predictions") == "toYYYYMM(ts)":
        for table in ("predictions_by_month", *_claimed_copies(client, database)):
            call(
                "dropping the old prediction log",
                client.command,
                on_cluster(f"DROP TABLE IF EXISTS `{database}`.{table}", cluster),
            )


def _claimed_copies(client: Client, database: str) -> list[str]:
    """Copies of the log claimed for an exchange and left behind (a process stopped in between,
    or one whose copy was not needed): only ever dropped once the log is by month."""
    result = call(
        "listing claimed copies of the prediction log",
        client.query,
        "SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {p:String})",
        parameters={"db": database, "p": _CLAIMED},
    )
    return sorted(str(row[0]) for row in result.result_rows if str(row[0]).startswith(_CLAIMED))


def _move_predictions(client: Client, database: str, cluster: str | None) -> None:
    """One move of the log by day: copy it into ``predictions_by_month``, claim the copy, exchange.

    The claim is a ``RENAME`` of the copy to a name only this process uses: ClickHouse renames a
    table once, so of processes claiming at the same moment one gets it and the others find no
    table (UNKNOWN_TABLE) and go back to the loop. ``EXCHANGE TABLES`` swaps two tables both
    ways, so two processes exchanging the log with one shared copy would undo each other; with a
    copy of its own, each exchange leaves a log by month, whatever the order.
    """
    db = f"`{database}`"
    if _partition_key(client, database, "predictions_by_month") is None:
        # Claimed or dropped by another process, or not made yet.
        call(
            "creating the prediction log by month",
            client.command,
            table_ddl("predictions_by_month", database, cluster=cluster),
        )
    columns = ", ".join(_PREDICTION_COLUMNS)
    call(
        "copying the prediction log to partitions by month",
        client.command,
        f"INSERT INTO {db}.predictions_by_month ({columns}) SELECT {columns} FROM {db}.predictions",
    )
    if _partition_key(client, database, "predictions") != "toYYYYMMDD(ts)":
        return  # moved by another process meanwhile
    mine = f"{_CLAIMED}{uuid.uuid4().hex[:12]}"
    try:
        call(
            "claiming the copy of the prediction log",
            client.command,
            on_cluster(f"RENAME TABLE {db}.predictions_by_month TO {db}.{mine}", cluster),
        )
    except StoreError as exc:
        if _race_code(exc) != _UNKNOWN_TABLE:
            raise
        return  # another process claimed it first: the loop looks again
    try:
        # Checked again just before: another process may have exchanged its own copy.
        if _partition_key(client, database, "predictions") == "toYYYYMMDD(ts)":
            call(
                "exchanging the prediction log tables",
                client.command,
                on_cluster(f"EXCHANGE TABLES {db}.predictions AND {db}.{mine}", cluster),
            )
            log.info("schema.repartitioned", table="predictions", partition_key="toYYYYMM(ts)")
    finally:
        # The old log after an exchange, else a copy no longer needed.
        call(
            "dropping the old prediction log",
            client.command,
            on_cluster(f"DROP TABLE IF EXISTS {db}.{mine}", cluster),
        )


def _pause(attempt: int) -> None:
    """A short random pause before attempt ``attempt`` (1, 2, ...): at most about 2 s in all."""
    time.sleep(random.uniform(0.5, 1.0) * min(0.05 * 2**attempt, 0.5))


_PREDICTION_COLUMNS = (
    "ts", "model", "model_version", "event_id", "features", "prediction", "latency_ms", "status",
    "segment", "kept_because", "sample_rate",
)  # fmt: skip
#: Steps a migration needs beyond its SQL, run after its statements (and again on a repair).
_STEPS: dict[int, Callable[[Client, str, str | None], None]] = {3: _rebuild_predictions}


def _apply_ttls(
    client: Client, database: str, ttl_days: Mapping[str, int], cluster: str | None
) -> None:
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
        wanted = f"{column} + toIntervalDay({int(days)})" if days else None
        if current.get(table) == wanted:
            continue
        if wanted is None:
            statement = f"ALTER TABLE `{database}`.`{table}` REMOVE TTL"
        else:
            # Old parts are cleaned by the next merge, not by a mutation over the whole table.
            statement = f"ALTER TABLE `{database}`.`{table}` MODIFY TTL {wanted} SETTINGS materialize_ttl_after_modify = 0"
        call(f"setting the TTL of {table}", client.command, on_cluster(statement, cluster))
        log.info("schema.ttl", table=table, ttl_days=days)
