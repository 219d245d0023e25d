"""The tables drifthouse writes, and how a row becomes a column of an insert.

Each :class:`TableSpec` names a table, the row type that fills it (the types live in
:mod:`drifthouse.rows`), its columns in insert order, which of them are times (integer epoch
milliseconds in the rows, ``DateTime64(3, 'UTC')`` in ClickHouse; clickhouse-connect writes
integers as raw ticks, so no conversion is needed) and its partition key. The DDL lives in ``sql/migrations``; :mod:`drifthouse.sinks.schema` applies it.

Partition keys are declared here, once: ClickHouse refuses an insert block touching more than
``max_partitions_per_insert_block`` partitions (100 by default), so the sink splits every batch
by :func:`partition_ids` before inserting, and a test checks each key against the table's DDL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import numpy as np

from drifthouse.rows import (
    AlertRow,
    AttributionWithdrawal,
    LabelPaneRow,
    LateLabelRow,
    LatePredictionRow,
    MetricRow,
    PredictionRow,
    ReferenceRow,
    SketchRow,
    WindowStateRow,
)

__all__ = [
    "CHANGES",
    "TABLES",
    "WITHDRAWALS",
    "TableSpec",
    "partition_ids",
    "spec_for",
    "to_columns",
]


Period = Literal["month", "day"]
_FUNCTIONS: dict[Period, str] = {"month": "toYYYYMM", "day": "toYYYYMMDD"}
_UNITS: dict[Period, str] = {"month": "datetime64[M]", "day": "datetime64[D]"}


@dataclass(frozen=True)
class TableSpec:
    """A table: its name, row type, insert columns, time columns and partition key.

    ``partition`` is ``(time column, period)``: the table is ``PARTITION BY toYYYYMM(column)``
    (``month``) or ``toYYYYMMDD(column)`` (``day``); ``None`` when it is not partitioned.
    """

    name: str
    row_type: type[Any]
    columns: tuple[str, ...]
    time_columns: frozenset[str]
    partition: tuple[str, Period] | None = None

    @property
    def partition_key(self) -> str:
        """The ``PARTITION BY`` expression as ClickHouse shows it (``''`` when unpartitioned)."""
        if self.partition is None:
            return ""
        column, period = self.partition
        return f"{_FUNCTIONS[period]}({column})"


def _spec(
    name: str,
    row_type: type[msgspec.Struct],
    times: set[str],
    partition: tuple[str, Period] | None = None,
) -> TableSpec:
    return TableSpec(name, row_type, tuple(row_type.__struct_fields__), frozenset(times), partition)


TABLES: dict[type[Any], TableSpec] = {
    MetricRow: _spec(
        "metrics",
        MetricRow,
        {"window_start", "window_end", "computed_at"},
        ("window_start", "month"),
    ),
    SketchRow: _spec(
        "sketches",
        SketchRow,
        {"window_start", "window_end", "computed_at"},
        ("window_start", "month"),
    ),
    AlertRow: _spec("alerts", AlertRow, {"ts", "window_start", "window_end"}, ("ts", "month")),
    PredictionRow: _spec("predictions", PredictionRow, {"ts"}, ("ts", "month")),
    ReferenceRow: _spec("references", ReferenceRow, {"created_at"}),
    LateLabelRow: _spec("labels", LateLabelRow, {"ts"}, ("ts", "month")),
    LatePredictionRow: _spec("label_predictions", LatePredictionRow, {"ts"}, ("ts", "month")),
    LabelPaneRow: _spec(
        "label_panes", LabelPaneRow, {"pane_start", "computed_at"}, ("pane_start", "month")
    ),
    WindowStateRow: _spec(
        "window_states",
        WindowStateRow,
        {"window_start", "window_end", "computed_at"},
        ("window_start", "month"),
    ),
}
#: The name under which the sinks buffer and spool :class:`AttributionWithdrawal` rows.
WITHDRAWALS = "metrics_withdrawals"
#: Rows that fill no table but change one, in the order they are written (after the rows
#: written before them): an :class:`AttributionWithdrawal` deletes rows of ``metrics``.
CHANGES: dict[type[Any], TableSpec] = {
    AttributionWithdrawal: _spec(
        WITHDRAWALS,
        AttributionWithdrawal,
        {"window_start", "computed_at"},
        ("window_start", "month"),
    ),
}
_BY_NAME = {spec.name: spec for spec in (*TABLES.values(), *CHANGES.values())}


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
        return TABLES.get(type(row_or_table)) or CHANGES[type(row_or_table)]
    except KeyError:
        raise TypeError(
            f"a sink takes MetricRow, SketchRow, AlertRow, PredictionRow or ReferenceRow (got {type(row_or_table).__name__})"
        ) from None


def to_columns(spec: TableSpec, rows: list[Any]) -> list[list[Any]]:
    """Rows of one table as columns in ``spec.columns`` order, ready for a column-oriented insert."""
    return [[getattr(row, name) for row in rows] for name in spec.columns]


def partition_ids(spec: TableSpec, rows: Sequence[Any]) -> list[int]:
    """The partition of each row, as an integer per period (UTC months or days since 1970).

    Rows with equal ids share a ClickHouse partition; the ids are not ClickHouse's own partition
    ids, only equal where those are. Every row has id 0 in an unpartitioned table.
    """
    if spec.partition is None:
        return [0] * len(rows)
    column, period = spec.partition
    millis = np.fromiter((getattr(row, column) for row in rows), dtype=np.int64, count=len(rows))
    periods: list[int] = (
        millis.astype("datetime64[ms]").astype(_UNITS[period]).astype(np.int64).tolist()
    )
    return periods
