"""DDL for a ClickHouse cluster: each schema statement as it runs ``ON CLUSTER`` (``store.cluster``).

A ``Replicated`` *database* replicates table definitions only; the rows of a plain
``ReplacingMergeTree`` table stay on the replica that took the insert. So with ``store.cluster``
set, :func:`on_cluster` turns each statement of the migrations into its cluster form:

- ``CREATE DATABASE``, ``CREATE TABLE``, ``CREATE VIEW``, ``ALTER TABLE`` (columns, TTLs),
  ``EXCHANGE TABLES`` and ``DROP TABLE`` run ``ON CLUSTER 'NAME'``, on every host of the cluster;
- every ``*MergeTree`` engine becomes its ``Replicated*MergeTree`` variant, with its own arguments
  (the version column) kept last, behind the replication arguments
  ``'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'``: one Keeper path per shard,
  database and table, the replica named by each server's macros. ClickHouse writes the database
  and table names into the path when it creates the table, so the path stays with the table
  through ``EXCHANGE TABLES`` (migration 3), and a table dropped on one host and created again
  there (a repair) joins its replicas again. A ``DROP TABLE`` on a cluster is ``SYNC``: the
  table's Keeper path is gone when it returns, free for a table created again under that name;
- ``INSERT`` is left alone: a replicated table sends its rows to the other replicas itself.

A statement of another kind, or a table with another engine, is refused rather than run on one
host. Without a cluster every statement is returned as it is, the very same string.
See docs/operations.md, "A ClickHouse cluster".
"""

from __future__ import annotations

import re

from drifthouse.config.sections import CLUSTER_NAME
from drifthouse.errors import StoreError

__all__ = ["REPLICATION_ARGS", "on_cluster"]

#: Where a replicated table keeps its log in Keeper, and its replica's name (server macros).
REPLICATION_ARGS = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"

_NAME = r"`[^`]+`\.`?\w+`?"
#: Statements whose ON CLUSTER clause follows the object's name.
_AFTER_NAME = re.compile(
    rf"^(CREATE DATABASE IF NOT EXISTS (?:`[^`]+`|\w+)|CREATE (?:TABLE|VIEW) IF NOT EXISTS {_NAME}"
    rf"|ALTER TABLE {_NAME})(?=\s|$)"
)
#: Statements whose ON CLUSTER clause ends them.
_AT_END = re.compile(
    rf"^(?:EXCHANGE TABLES {_NAME} AND {_NAME}|RENAME TABLE {_NAME} TO {_NAME}"
    rf"|DROP TABLE IF EXISTS {_NAME})$"
)
_DROP = "DROP TABLE"
_ENGINE = re.compile(r"\bENGINE = (\w*MergeTree)\b(?:\(([^()]*)\))?")
_LEFT_ALONE = ("INSERT ",)


def on_cluster(statement: str, cluster: str | None) -> str:
    """``statement`` as it runs on every host of ``cluster``; ``statement`` itself without one.

    >>> on_cluster("ALTER TABLE `d`.t REMOVE TTL", "c")
    "ALTER TABLE `d`.t ON CLUSTER 'c' REMOVE TTL"
    >>> on_cluster("CREATE TABLE IF NOT EXISTS `d`.t (v UInt8) ENGINE = ReplacingMergeTree(v) ORDER BY v", "c")
    "CREATE TABLE IF NOT EXISTS `d`.t ON CLUSTER 'c' (v UInt8) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', v) ORDER BY v"
    """
    if cluster is None or statement.startswith(_LEFT_ALONE):
        return statement
    if not CLUSTER_NAME.fullmatch(cluster):
        raise StoreError(
            f"store.cluster must name a cluster of the servers' remote_servers, such as "
            f"'drifthouse', or a macro such as '{{cluster}}' (got {cluster!r})"
        )
    clause = f"ON CLUSTER '{cluster}'"
    if _AT_END.match(statement):
        return (
            f"{statement} {clause} SYNC" if statement.startswith(_DROP) else f"{statement} {clause}"
        )
    head = _AFTER_NAME.match(statement)
    if head is None:
        raise StoreError(
            f"cannot run this statement on cluster {cluster!r}: {_first_line(statement)!r}; "
            "drifthouse.sinks.cluster knows CREATE DATABASE/TABLE/VIEW IF NOT EXISTS, ALTER TABLE, "
            "EXCHANGE TABLES, RENAME TABLE, DROP TABLE IF EXISTS and INSERT"
        )
    rendered = f"{head.group(1)} {clause}{statement[head.end() :]}"
    if statement.startswith("CREATE TABLE"):
        rendered = _replicated(rendered, cluster)
    return rendered


def _replicated(statement: str, cluster: str) -> str:
    engine = _ENGINE.search(statement)
    if engine is None:
        raise StoreError(
            f"cannot create this table on cluster {cluster!r}: {_first_line(statement)!r} has no "
            "*MergeTree engine, and only those have a Replicated variant that keeps every "
            "replica's rows"
        )
    args = engine.group(2)
    replicated = f"ENGINE = Replicated{engine.group(1)}({REPLICATION_ARGS}"
    replicated += f", {args})" if args else ")"
    return statement[: engine.start()] + replicated + statement[engine.end() :]


def _first_line(statement: str) -> str:
    return statement.splitlines()[0] if statement else statement
