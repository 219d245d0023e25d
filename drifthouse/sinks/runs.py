"""The runs in the store: what each run id wrote, and deleting one run's rows.

Every results table with a ``run_id`` column (:data:`RUN_TABLES`, the tables of the migrations
under ``sinks/sql/migrations`` that have one) is read and cleaned here, always with the run id as
a query parameter (``{run:String}``), never in the SQL text. A run id is ``live`` for the rows of
the live workers, ``reference`` for the reference histograms in ``sketches`` and whatever
``drifthouse replay --run-id`` (or the demo, ``demo``) named for a bounded run
(docs/clickhouse.md "Runs: listing and deleting them").

Rows are counted as readers see them, one per key (``FINAL``): a window written twice (a retry,
a recomputation after late data) counts once, whether or not ClickHouse's merges have collapsed
its two rows yet; the delete removes both.

Deleting is ``ALTER TABLE ... DELETE WHERE run_id = {run:String}`` with ``mutations_sync = 2``
in the statement: it returns once every replica has applied it, where a server's default
(``mutations_sync = 0``) would leave the mutation running in the background. ``ON CLUSTER``
with ``store.cluster``, rendered by :func:`~drifthouse.sinks.cluster.on_cluster` as the
migrations are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drifthouse.errors import StoreError, UsageError
from drifthouse.sinks.cluster import on_cluster
from drifthouse.sinks.schema import tables_in
from drifthouse.sinks.store import Client, call

__all__ = [
    "LIVE",
    "REFERENCE",
    "RUN_TABLES",
    "Run",
    "RunTable",
    "count_run",
    "delete_run",
    "delete_statement",
    "list_runs",
    "runs_from_rows",
    "runs_select",
]

#: The run id of the live workers' rows.
LIVE = "live"
#: The run id of the reference histograms (``sketches``), written again at every start.
REFERENCE = "reference"


@dataclass(frozen=True)
class RunTable:
    """A table with a ``run_id`` column: the columns that give its rows' span in event time."""

    name: str
    start: str
    end: str


#: Every table with a ``run_id`` column, in the order they are listed.
RUN_TABLES: tuple[RunTable, ...] = (
    RunTable("metrics", "window_start", "window_end"),
    RunTable("sketches", "window_start", "window_end"),
    RunTable("alerts", "ts", "ts"),
    RunTable("window_states", "window_start", "window_end"),
    RunTable("labels", "ts", "ts"),
    RunTable("label_predictions", "ts", "ts"),
    RunTable("label_panes", "pane_start", "pane_start"),
)


@dataclass(frozen=True)
class Run:
    """One run id's rows: span in event time (ms), models, rows per table, when written (s)."""

    run_id: str
    first_ms: int
    last_ms: int
    models: tuple[str, ...]
    rows: Mapping[str, int] = field(default_factory=dict)
    written_first_s: int = 0
    written_last_s: int = 0

    @property
    def kind(self) -> str:
        """``live``, ``reference`` or ``run`` (a replay, the demo)."""
        return self.run_id if self.run_id in (LIVE, REFERENCE) else "run"

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _present(client: Client, database: str) -> list[RunTable]:
    """The run tables this database has (a store migrated by an older release lacks some)."""
    names = tables_in(client, database)
    return [t for t in RUN_TABLES if t.name in names]


def _per_table(table: RunTable, database: str, where: str) -> str:
    return (
        f"SELECT {{t_{table.name}:String}} AS tbl, run_id, count() AS n, "
        "groupUniqArray(toString(model)) AS models, "
        f"toUnixTimestamp64Milli(min({table.start})) AS first_ms, "
        f"toUnixTimestamp64Milli(max({table.end})) AS last_ms, "
        "toUnixTimestamp(min(inserted_at)) AS written_first, "
        "toUnixTimestamp(max(inserted_at)) AS written_last "
        f"FROM `{database}`.`{table.name}` FINAL {where} GROUP BY run_id"
    )


def runs_select(
    database: str, tables: Sequence[RunTable] = RUN_TABLES, run_id: str | None = None
) -> tuple[str, dict[str, str]]:
    """The SELECT that :func:`list_runs` runs, and its parameters: one SELECT over the
    drifthouse tables, which the worker's read-only SQL endpoint also answers."""
    where = "WHERE run_id = {run:String}" if run_id is not None else ""
    sql = " UNION ALL ".join(_per_table(t, database, where) for t in tables)
    params = {f"t_{t.name}": t.name for t in tables}
    if run_id is not None:
        params["run"] = run_id
    return sql, params


def runs_from_rows(
    rows: Iterable[Sequence[Any]], tables: Sequence[RunTable] = RUN_TABLES
) -> list[Run]:
    """The runs in the rows :func:`runs_select` returns: live first, then by first written."""
    found: dict[str, _Acc] = {}
    for tbl, rid, n, models, first, last, w_first, w_last in rows:
        found.setdefault(str(rid), _Acc()).add(
            str(tbl),
            int(n),
            [str(m) for m in models],
            int(first),
            int(last),
            int(w_first),
            int(w_last),
        )
    runs = [acc.run(rid, [t.name for t in tables]) for rid, acc in found.items()]
    return sorted(runs, key=lambda r: (r.kind != LIVE, r.written_first_s, r.run_id))


def list_runs(client: Client, database: str, run_id: str | None = None) -> list[Run]:
    """Every run id in the store (or only ``run_id``), live first, then by first written."""
    tables = _present(client, database)
    if not tables:
        return []
    sql, params = runs_select(database, tables, run_id)
    result = call("listing the runs", client.query, sql, parameters=params)
    return runs_from_rows(result.result_rows, tables)


@dataclass
class _Acc:
    """One run's figures while the tables' rows come in."""

    rows: dict[str, int] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)
    first_ms: int | None = None
    last_ms: int | None = None
    written: list[int] = field(default_factory=list)

    def add(
        self, table: str, n: int, models: list[str], first: int, last: int, wf: int, wl: int
    ) -> None:
        self.rows[table] = n
        self.models.update(models)
        self.first_ms = first if self.first_ms is None else min(self.first_ms, first)
        self.last_ms = last if self.last_ms is None else max(self.last_ms, last)
        self.written += [int(wf), int(wl)]

    def run(self, run_id: str, order: list[str]) -> Run:
        return Run(
            run_id=run_id,
            first_ms=int(self.first_ms or 0),
            last_ms=int(self.last_ms or 0),
            models=tuple(sorted(self.models)),
            rows={t: self.rows[t] for t in order if t in self.rows},
            written_first_s=min(self.written),
            written_last_s=max(self.written),
        )


def count_run(client: Client, database: str, run_id: str) -> dict[str, int]:
    """Rows of ``run_id`` per run table that has any (empty when the run id is unknown)."""
    runs = list_runs(client, database, run_id)
    return dict(runs[0].rows) if runs else {}


def delete_statement(database: str, table: str, cluster: str | None = None) -> str:
    """The statement that deletes one run's rows of ``table`` (run id bound as ``run``).

    >>> delete_statement("drifthouse", "metrics")
    'ALTER TABLE `drifthouse`.`metrics` DELETE WHERE run_id = {run:String} SETTINGS mutations_sync = 2'
    """
    if table not in {t.name for t in RUN_TABLES}:
        raise StoreError(f"{table!r} has no run_id column: it is not one of the run tables")
    statement = (
        f"ALTER TABLE `{database}`.`{table}` DELETE WHERE run_id = {{run:String}} "
        "SETTINGS mutations_sync = 2"
    )
    return on_cluster(statement, cluster)


def delete_run(
    client: Client, database: str, run_id: str, *, cluster: str | None = None
) -> dict[str, int]:
    """Delete every row of ``run_id`` from every run table; the rows deleted per table.

    Refuses (:class:`~drifthouse.errors.UsageError`) a run id with no rows, deleting nothing;
    raises :class:`~drifthouse.errors.StoreError` if rows of the run are still there afterwards.
    The caller decides about the ``live`` and ``reference`` run ids.
    """
    before = count_run(client, database, run_id)
    if not before:
        raise UsageError(
            f"no run {run_id!r} in database {database!r}: nothing deleted "
            "(`drifthouse runs` lists the run ids)"
        )
    for table in before:
        call(
            f"deleting run {run_id!r} from {table}",
            client.command,
            delete_statement(database, table, cluster),
            parameters={"run": run_id},
        )
    left = count_run(client, database, run_id)
    if left:
        rows = ", ".join(f"{t} {n:,}" for t, n in left.items())
        raise StoreError(
            f"run {run_id!r} still has rows after the delete ({rows}); on a cluster, a replica "
            "may still be applying it: run `drifthouse runs` again in a moment"
        )
    return before
