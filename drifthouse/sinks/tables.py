"""The tables drifthouse writes, and how a row becomes a column of an insert.

Each :class:`TableSpec` names a table, the row type that fills it, its columns in insert order and
which of them are times (integer epoch milliseconds in the rows, ``DateTime64(3, 'UTC')`` in
ClickHouse; clickhouse-connect writes integers as raw ticks, so no conversion is needed).
The DDL lives in ``sql/migrations``; :mod:`drifthouse.sinks.schema` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from drifthouse.rows import AlertRow, MetricRow, SketchRow

__all__ = [
    "TABLES",
    "PredictionRow",
    "ReferenceRow",
    "Row",
    "TableSpec",
    "spec_for",
    "to_columns",
]


class PredictionRow(msgspec.Struct, frozen=True, kw_only=True):
    """One logged prediction: a row of table ``predictions``.

    ``features``, ``prediction`` and ``segment`` are JSON text; PII features are keyed hashes.
    ``sample_rate`` is the probability that an event like this one was logged (1.0 for errors and
    ``keep_when`` matches), so ``sum(1 / sample_rate)`` estimates the number of events.
    """

    ts: int
    model: str
    model_version: str
    event_id: str
    features: str
    prediction: str
    latency_ms: float | None
    status: int
    segment: str
    kept_because: str
    sample_rate: float


class ReferenceRow(msgspec.Struct, frozen=True, kw_only=True):
    """One stored reference profile (CONTRACTS section 2): a row of table ``references``."""

    model: str
    model_version: str
    created_at: int
    digest: str
    source: str
    profile: str


Row = MetricRow | SketchRow | AlertRow | PredictionRow | ReferenceRow


@dataclass(frozen=True)
class TableSpec:
    """A table: its name, row type, insert columns and time columns."""

    name: str
    row_type: type[Any]
    columns: tuple[str, ...]
    time_columns: frozenset[str]


def _spec(name: str, row_type: type[msgspec.Struct], times: set[str]) -> TableSpec:
    return TableSpec(name, row_type, tuple(row_type.__struct_fields__), frozenset(times))


TABLES: dict[type[Any], TableSpec] = {
    MetricRow: _spec("metrics", MetricRow, {"window_start", "window_end", "computed_at"}),
    SketchRow: _spec("sketches", SketchRow, {"window_start", "window_end", "computed_at"}),
    AlertRow: _spec("alerts", AlertRow, {"ts", "window_start", "window_end"}),
    PredictionRow: _spec("predictions", PredictionRow, {"ts"}),
    ReferenceRow: _spec("references", ReferenceRow, {"created_at"}),
}
_BY_NAME = {spec.name: spec for spec in TABLES.values()}


def spec_for(row_or_table: object) -> TableSpec:
    """The table of a row (or of a table name); ``TypeError`` for anything else."""
    if isinstance(row_or_table, str):
        try:
            return _BY_NAME[row_or_table]
        except KeyError:
            raise TypeError(
                f"unknown table {row_or_table!r}; expected one of {sorted(_BY_NAME)}"
            ) from None
    try:
        return TABLES[type(row_or_table)]
    except KeyError:
        raise TypeError(
            f"a sink takes MetricRow, SketchRow, AlertRow, PredictionRow or ReferenceRow (got {type(row_or_table).__name__})"
        ) from None


def to_columns(spec: TableSpec, rows: list[Any]) -> list[list[Any]]:
    """Rows of one table as columns in ``spec.columns`` order, ready for a column-oriented insert."""
    return [[getattr(row, name) for row in rows] for name in spec.columns]
