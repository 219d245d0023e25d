"""The sink contract, and an in-memory sink for tests and the demo.

A sink takes rows (:class:`~drifthouse.rows.MetricRow`, :class:`~drifthouse.rows.SketchRow`,
:class:`~drifthouse.rows.AlertRow`, :class:`~drifthouse.rows.PredictionRow`,
:class:`~drifthouse.rows.ReferenceRow`) with :meth:`Sink.write`; :meth:`Sink.flush` returns
only once every row written so far is durably stored or set aside, so the caller may then commit
its Kafka offsets. :attr:`Sink.pressure` (0 = idle, 1 = full) tells the caller to slow down before
a sink runs out of room.

A bounded run (replay, demo) ends with :func:`finish`: it closes the sink and returns its
:class:`WriteReport` (rows the store acknowledged per table, rows it refused and why, rows still
spooled); :meth:`WriteReport.check` raises :class:`~drifthouse.errors.RowsNotStored` unless every
row was stored.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from drifthouse.errors import RowsNotStored
from drifthouse.rows import AttributionWithdrawal, MetricRow, Row
from drifthouse.sinks.tables import WITHDRAWALS, spec_for

__all__ = ["MemorySink", "Refusal", "Sink", "WriteReport", "finish", "row_key"]


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


@dataclass(frozen=True)
class Refusal:
    """Rows of one table the store refused for good: how many, which, why, and where they are kept."""

    table: str
    rows: int
    which: str
    reason: str
    kept_in: Path | None = None

    def describe(self) -> str:
        kept = f"; kept in {self.kept_in}" if self.kept_in is not None else "; not kept (no spool)"
        return f"{self.table}: {self.rows:,} rows refused ({self.which}): {self.reason}{kept}"


@dataclass
class WriteReport:
    """What a sink did: rows acknowledged by the store per table, rows refused, rows still spooled."""

    stored: dict[str, int] = field(default_factory=dict)
    refused: list[Refusal] = field(default_factory=list)
    spooled_rows: int = 0
    spool_dir: Path | None = None

    @property
    def stored_rows(self) -> int:
        return sum(self.stored.values())

    @property
    def refused_rows(self) -> int:
        return sum(r.rows for r in self.refused)

    @property
    def ok(self) -> bool:
        """Whether every row written reached the store."""
        return not self.refused and not self.spooled_rows

    def stored_text(self) -> str:
        """``'1,234 rows stored (metrics 1,000, sketches 234)'``."""
        parts = ", ".join(f"{t} {n:,}" for t, n in sorted(self.stored.items()) if n)
        return f"{self.stored_rows:,} rows stored" + (f" ({parts})" if parts else "")

    def problems(self) -> list[str]:
        """One line per refusal, and one for rows still in the spool."""
        by_table: dict[str, list[Refusal]] = {}
        for refusal in self.refused:
            by_table.setdefault(refusal.table, []).append(refusal)
        lines = []
        for table, refusals in by_table.items():
            if len(refusals) == 1:
                lines.append(refusals[0].describe())
                continue
            first, rows = refusals[0], sum(r.rows for r in refusals)
            files = [r.kept_in for r in refusals if r.kept_in is not None]
            kept = (
                f"; kept in {files[0]} and {len(files) - 1} more files beside it"
                if files
                else "; not kept (no spool)"
            )
            lines.append(
                f"{table}: {rows:,} rows refused in {len(refusals)} inserts, the first "
                f"({first.rows:,} rows, {first.which}): {first.reason}{kept}"
            )
        if self.spooled_rows:
            lines.append(
                f"{self.spooled_rows:,} rows still in the spool at {self.spool_dir} (the store was "
                "unreachable or busy); the next run with this spool inserts them"
            )
        return lines

    def check(self) -> None:
        """Raise :class:`RowsNotStored` unless every row written reached the store."""
        if self.ok:
            return
        raise RowsNotStored(
            f"not every row reached the store ({self.stored_text()}): " + "; ".join(self.problems())
        )


def finish(sink: Sink) -> WriteReport:
    """Close ``sink`` at the end of a bounded run and say what it stored (see :class:`WriteReport`)."""
    sink.close()
    report = getattr(sink, "report", None)
    return report() if callable(report) else WriteReport()


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
    if table == "labels":
        return (row.model, row.run_id, row.event_id, row.seq, row.ts)
    if table == "label_predictions":
        return (row.model, row.run_id, row.event_id, row.ts)
    if table == "label_panes":
        return (row.model, row.run_id, row.window, row.pane_start, row.model_version, row.segment)
    if table == WITHDRAWALS:
        return (row.window_start, row.window, row.model, row.model_version, row.run_id,
                row.computed_at)  # fmt: skip
    if table == "window_states":
        return (row.model, row.run_id, row.window, row.window_start, row.model_version)
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
            if isinstance(row, AttributionWithdrawal):  # deletes, in the order written
                metrics = self._latest.get("metrics", {})
                for key in [
                    k for k, r in metrics.items() if isinstance(r, MetricRow) and row.withdraws(r)
                ]:
                    del metrics[key]
                continue
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

    def report(self) -> WriteReport:
        stored: dict[str, int] = {}
        for row in self.flushed:
            name = spec_for(row).name
            stored[name] = stored.get(name, 0) + 1
        return WriteReport(stored=stored)

    @property
    def pressure(self) -> float:
        return 0.0

    def rows(self, table: str) -> list[Any]:
        """Flushed rows of ``table`` (``metrics``, ``sketches``, ...), one per key."""
        return list(self._latest.get(table, {}).values())
