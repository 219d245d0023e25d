"""The ClickHouse sink: batched, retried, spooled to disk while the store is away.

Rows are buffered per table and inserted column-oriented (times stay integer milliseconds, which
clickhouse-connect writes as ``DateTime64(3)`` ticks) when ``batch_rows`` rows are waiting, when
``flush_interval_ms`` has passed, or on :meth:`ClickHouseSink.flush`. Retryable failures
(:class:`~drifthouse.errors.StoreUnavailable`) are retried with exponential backoff; when they
persist, the batch goes to the on-disk :class:`~drifthouse.sinks.spool.Spool` and is replayed, in
order, once the store answers again. Rewrites of a key collapse in the store (ReplacingMergeTree
read with FINAL), so a replayed or retried batch is never counted twice.

Example
-------
>>> from drifthouse.sinks.store import open_store
>>> client = open_store("chdb:///tmp/drifthouse-doctest")  # doctest: +SKIP
>>> sink = ClickHouseSink(client, spool_dir="/tmp/drifthouse-spool")  # doctest: +SKIP
>>> sink.write(rows); sink.flush()  # doctest: +SKIP
>>> if sink.should_pause(): ...  # the store is away and the spool fills: consume slower
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from drifthouse.config import StoreConfig
from drifthouse.errors import StoreError, StoreUnavailable
from drifthouse.logs import get_logger
from drifthouse.sinks.spool import Spool, SpoolBatch
from drifthouse.sinks.store import Client, call
from drifthouse.sinks.tables import Row, spec_for, to_columns

__all__ = ["ClickHouseSink"]

log = get_logger("sinks.clickhouse")


class ClickHouseSink:
    """Batched, retried inserts into the drifthouse tables, with an on-disk spool for outages.

    Parameters
    ----------
    client:
        A clickhouse-connect client from :func:`~drifthouse.sinks.store.open_store`. The sink uses
        it from one thread at a time.
    database:
        Database of the tables; the client's current database when ``None``.
    batch_rows:
        Flush when this many rows are buffered (all tables together).
    flush_interval_ms:
        Flush when this long has passed since the last flush (checked on :meth:`write` and
        :meth:`flush_if_due`).
    spool_dir, spool_max_bytes:
        Where and how much to spool while the store is unreachable. Without a spool, a flush that
        cannot reach the store raises :class:`StoreUnavailable` and keeps the rows buffered.
    pause_at:
        :meth:`should_pause` turns true when :attr:`pressure` reaches this share of the spool.
    retries, backoff_s, max_backoff_s:
        Attempts after the first on a retryable error, and the exponential backoff between them.
        While batches wait in the spool, the store is probed at most once per backoff period
        (doubling up to ``max_backoff_s``) rather than retried on every flush.
    """

    def __init__(
        self,
        client: Client,
        *,
        database: str | None = None,
        batch_rows: int = 10_000,
        flush_interval_ms: int = 1_000,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = 256 * 1024 * 1024,
        pause_at: float = 0.5,
        retries: int = 4,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if batch_rows <= 0:
            raise ValueError(f"batch_rows must be positive (got {batch_rows})")
        if not 0.0 < pause_at <= 1.0:
            raise ValueError(f"pause_at must be in (0, 1] (got {pause_at})")
        self.client = client
        self.database = database or client.database
        self.batch_rows = batch_rows
        self.flush_interval_s = flush_interval_ms / 1000.0
        self.spool = Spool(spool_dir, spool_max_bytes) if spool_dir is not None else None
        self.pause_at = pause_at
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._sleep = sleep
        self._buffer: dict[str, list[Any]] = {}
        self._buffered = 0
        self._last_flush = clock()
        self._probe_at = 0.0
        self._probe_delay = backoff_s
        self._types: dict[str, list[str]] = {}
        self.available = True
        self.inserted_rows = 0
        self.spooled_rows = 0
        self.replayed_batches = 0

    @classmethod
    def from_config(cls, client: Client, store: StoreConfig, **overrides: Any) -> ClickHouseSink:
        """A sink with the ``store:`` section's batch, interval, spool and database settings."""
        options: dict[str, Any] = {
            "database": store.database,
            "batch_rows": store.batch_rows,
            "flush_interval_ms": store.flush_interval,
            "spool_dir": store.spool_dir,
            "spool_max_bytes": store.spool_max_bytes,
        }
        options.update(overrides)
        return cls(client, **options)

    # -- the Sink protocol -------------------------------------------------------------------

    def write(self, rows: Iterable[Row]) -> None:
        """Buffer rows; flush when ``batch_rows`` are waiting or the flush interval has passed."""
        for row in rows:
            self._buffer.setdefault(spec_for(row).name, []).append(row)
            self._buffered += 1
        if self._buffered >= self.batch_rows:
            self.flush()
        else:
            self.flush_if_due()

    def flush_if_due(self) -> bool:
        """Flush when the flush interval has passed since the last flush; say whether it did."""
        if (
            self._buffered or self.spool
        ) and self._clock() - self._last_flush >= self.flush_interval_s:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        """Store every buffered row durably: in ClickHouse, or fsync'd in the spool.

        Raises
        ------
        SpoolFull
            The store is away and the spool has no room; the rows stay buffered, retry later.
        StoreUnavailable
            The store is away and there is no spool; the rows stay buffered.
        StoreError
            The store rejected a batch (schema or type error); the rows stay buffered.
        """
        self._last_flush = self._clock()
        spool_empty = self._drain_spool(force=False)
        for table in list(self._buffer):
            rows = self._buffer[table]
            if spool_empty:
                try:
                    self._insert(table, rows, retries=self.retries)
                except StoreUnavailable:
                    if self.spool is None:
                        raise
                    spool_empty = False
                    self._probe_at = self._clock() + self._probe_delay
            if not spool_empty:
                assert self.spool is not None
                self.spool.append(table, rows)  # SpoolFull leaves this and later tables buffered
                self.spooled_rows += len(rows)
                log.warning(
                    "sink.spooled", table=table, rows=len(rows), spool_bytes=self.spool.bytes
                )
            del self._buffer[table]
            self._buffered -= len(rows)

    def close(self) -> None:
        """Flush and, if the store is back, replay the spool. The client stays open: its opener owns it."""
        self.flush()
        self.replay()

    # -- backpressure ------------------------------------------------------------------------

    @property
    def pressure(self) -> float:
        """0.0 when rows flow; rises with the spool's fill while the store is away; 1.0 when full."""
        if self.spool is not None:
            return self.spool.fill
        return 0.0 if self.available else 1.0

    def should_pause(self) -> bool:
        """Whether the caller should stop consuming for a while (well before :class:`SpoolFull`)."""
        return self.pressure >= self.pause_at

    @property
    def pending_batches(self) -> int:
        """Batches waiting in the spool."""
        return len(self.spool) if self.spool is not None else 0

    def replay(self) -> int:
        """Replay the spool now (ignoring the probe backoff); return the batches it inserted."""
        before = self.replayed_batches
        self._drain_spool(force=True)
        return self.replayed_batches - before

    # -- internals ---------------------------------------------------------------------------

    def _drain_spool(self, *, force: bool) -> bool:
        """Insert spooled batches in order; True once the spool is empty."""
        if not self.spool:
            return True
        if not force and self._clock() < self._probe_at:
            return False
        for batch in self.spool.batches():
            try:
                self._insert(batch.table, batch.rows, retries=0)
            except StoreUnavailable:
                self._probe_delay = min(self._probe_delay * 2, self.max_backoff_s)
                self._probe_at = self._clock() + self._probe_delay
                return False
            except StoreError as exc:
                self._reject(batch, exc)
                continue
            self.spool.remove(batch)
            self.replayed_batches += 1
            log.info("sink.replayed", table=batch.table, rows=len(batch.rows), left=len(self.spool))
        self._probe_delay = self.backoff_s
        return True

    def _reject(self, batch: SpoolBatch, exc: StoreError) -> None:
        # A batch the store refuses for good must not block the ones behind it, nor be lost:
        # it is kept beside the spool for an operator.
        assert self.spool is not None
        rejected = Path(batch.path).with_suffix(".rejected")
        os.replace(batch.path, rejected)
        self.spool.remove(batch)
        log.error(
            "sink.rejected",
            table=batch.table,
            rows=len(batch.rows),
            file=str(rejected),
            error=str(exc),
        )

    def _column_types(self, table: str) -> list[str]:
        types = self._types.get(table)
        if types is None:
            result = call(
                f"describing table {table}",
                self.client.query,
                f"DESCRIBE TABLE `{self.database}`.`{table}`",
            )
            by_name = {row[0]: row[1] for row in result.result_rows}
            try:
                types = [by_name[name] for name in spec_for(table).columns]
            except KeyError as exc:
                raise StoreError(
                    f"table {self.database}.{table} has no column {exc.args[0]!r}; run `drifthouse migrate`"
                ) from None
            self._types[table] = types
        return types

    def _insert(self, table: str, rows: list[Any], *, retries: int) -> None:
        spec = spec_for(table)
        columns = to_columns(spec, rows)
        delay = self.backoff_s
        for attempt in range(retries + 1):
            try:
                call(
                    f"inserting {len(rows)} rows into {table}",
                    self.client.insert,
                    table,
                    columns,
                    database=self.database,
                    column_names=list(spec.columns),
                    column_type_names=self._column_types(table),
                    column_oriented=True,
                )
            except StoreUnavailable as exc:
                self.available = False
                if attempt == retries:
                    raise
                log.warning(
                    "sink.retry", table=table, attempt=attempt + 1, delay_s=delay, error=str(exc)
                )
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            self.available = True
            self.inserted_rows += len(rows)
            log.debug("sink.flushed", table=table, rows=len(rows))
            return
