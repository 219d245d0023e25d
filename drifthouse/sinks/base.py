"""The sink contract, and an in-memory sink for tests and the demo.

A sink takes rows (:class:`~drifthouse.rows.MetricRow`, :class:`~drifthouse.rows.SketchRow`,
:class:`~drifthouse.rows.AlertRow`, :class:`~drifthouse.sinks.tables.PredictionRow`,
:class:`~drifthouse.sinks.tables.ReferenceRow`) with :meth:`Sink.write`; :meth:`Sink.flush` returns
only once every row written so far is durably stored, so the caller may then commit its Kafka
offsets. :attr:`Sink.pressure` (0 = idle, 1 = full) tells the caller to slow down before a sink
runs out of room.

Example
-------
>>> from drifthouse.rows import MetricRow
>>> sink = MemorySink()
>>> row = MetricRow(window_start=0, window_end=3_600_000, window="1h", model="fraud",
...                 model_version="1", feature="amount", segment="", metric="psi",
...                 value=0.3, n=100, run_id="live", computed_at=1)
>>> sink.write([row, row])
>>> sink.flush()
>>> len(sink.rows("metrics")), sink.flushes
(1, 1)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from drifthouse.sinks.tables import Row, spec_for

__all__ = ["MemorySink", "Sink", "row_key"]


@runtime_checkable
class Sink(Protocol):
    """Where pipeline results go."""

    def write(self, rows: Iterable[Row]) -> None:
        """Accept rows; they may be buffered until :meth:`flush`."""

    def flush(self) -> None:
        """Return only when every row written so far is durably stored."""

    def close(self) -> None:
        """Flush and release resources."""

    @property
    def pressure(self) -> float:
        """How full the sink's buffers are, from 0.0 (idle) to 1.0 (full): slow down as it rises."""
        ...


def row_key(row: Any) -> tuple[Any, ...]:
    """The natural key of a row: the table's ORDER BY, under which rewrites collapse."""
    table = spec_for(row).name
    if table == "metrics":
        key: tuple[Any, ...] = row.key()
        return key
    if table == "sketches":
        return (row.window_start, row.window, row.model, row.model_version, row.feature,
                row.segment, row.metric, row.kind, row.run_id)  # fmt: skip
    if table == "alerts":
        return (row.model, row.rule, row.dedup_key, row.status, row.ts, row.run_id)
    if table == "predictions":
        return (row.model, row.ts, row.event_id)
    return (row.model, row.model_version, row.digest)


def _version(row: Any) -> int:
    return int(getattr(row, "computed_at", 0) or getattr(row, "created_at", 0) or 0)


class MemorySink:
    """A sink that keeps rows in memory, with the store's semantics: one row per key, newest wins.

    ``written`` holds every row in arrival order (duplicates included); :meth:`rows` gives what a
    ``FINAL`` query would. ``fail_next`` makes the next flushes raise, for testing callers.
    """

    def __init__(self) -> None:
        self.written: list[Row] = []
        self.flushed: list[Row] = []
        self.flushes = 0
        self.closed = False
        self.fail_next: list[Exception] = []
        self._pending: list[Row] = []
        self._latest: dict[str, dict[tuple[Any, ...], Row]] = {}

    def write(self, rows: Iterable[Row]) -> None:
        for row in rows:
            spec_for(row)  # reject foreign objects at once, like the real sink
            self.written.append(row)
            self._pending.append(row)

    def flush(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)
        for row in self._pending:
            table = self._latest.setdefault(spec_for(row).name, {})
            key = row_key(row)
            old = table.get(key)
            if old is None or _version(row) >= _version(old):
                table[key] = row
        self.flushed.extend(self._pending)
        self._pending.clear()
        self.flushes += 1

    def close(self) -> None:
        self.flush()
        self.closed = True

    @property
    def pressure(self) -> float:
        return 0.0

    def rows(self, table: str) -> list[Any]:
        """Flushed rows of ``table`` (``metrics``, ``sketches``, ...), one per key."""
        return list(self._latest.get(table, {}).values())
