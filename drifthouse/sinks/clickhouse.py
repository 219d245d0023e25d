"""The ClickHouse sink: batched, retried, spooled to disk while the store is away.

Rows are buffered per table and inserted column-oriented (times stay integer milliseconds, which
clickhouse-connect writes as ``DateTime64(3)`` ticks) when ``batch_rows`` rows are waiting, when
``flush_interval_ms`` has passed, or on :meth:`ClickHouseSink.flush`. Retryable failures
(:class:`~drifthouse.errors.StoreUnavailable`) are retried with exponential backoff; when they
persist, the batch goes to the on-disk :class:`~drifthouse.sinks.spool.Spool` and is replayed, in
order, once the store answers again. Rewrites of a key collapse in the store (ReplacingMergeTree
read with FINAL), so a replayed or retried batch is never counted twice.

Every insert touches at most ``max_partitions_per_insert_block`` partitions (a batch of years of
history is split by partition key), and errors no retry fixes (see
:mod:`drifthouse.sinks.store`) never reach the spool: the refused rows (found by halving the
insert when only some rows are at fault) are set aside and reported by
:meth:`ClickHouseSink.report`, and the rows behind them go on.

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
from typing import Any

from drifthouse.config import StoreConfig
from drifthouse.errors import RowsRefused, StoreError, StoreUnavailable
from drifthouse.logs import get_logger
from drifthouse.rows import Row
from drifthouse.sinks.base import Refusal, WriteReport, row_key
from drifthouse.sinks.spool import Spool
from drifthouse.sinks.store import Client, call, insert
from drifthouse.sinks.tables import WITHDRAWALS, partition_ids, spec_for, to_columns
from drifthouse.sinks.withdrawals import withdraw

__all__ = ["ClickHouseSink"]

log = get_logger("sinks.clickhouse")

_DEFAULT_MAX_PARTITIONS = 100  # ClickHouse's default max_partitions_per_insert_block
_KEEP_REFUSALS = 100  # refusals a report lists one by one; later ones are counted per table


def _which(table: str, rows: list[Any]) -> str:
    """Which rows, in a few words: their time span and the first one's key."""
    spec = spec_for(table)
    span = ""
    if spec.partition is not None:
        column = spec.partition[0]
        times = sorted(t for r in rows if isinstance(t := getattr(r, column, None), int))
        if times:
            span = f"{column} {_iso(times[0])} to {_iso(times[-1])}, "
    try:
        first = repr(row_key(rows[0]))
    except Exception:  # a malformed row: show what it is
        first = repr(rows[0])
    return f"{span}first key {first[:200]}"


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return str(ms)


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
    max_partitions:
        At most this many partitions per insert, and never more than the server's
        ``max_partitions_per_insert_block``: a batch spanning more (a replay of years of history)
        is split by partition.
    isolate_inserts:
        When the store refuses an insert because of some of its rows (a constraint, a value out
        of range), it is halved until those rows are found, with at most this many inserts per
        refused insert; the rows left unresolved then are refused with them.

    Rows the store refuses for good are set aside in the spool folder (``*.rejected``), logged
    (``sink.refused``) and listed by :meth:`report`; the rows behind them go on.
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
        max_partitions: int = 100,
        isolate_inserts: int = 256,
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
        self.max_partitions = max_partitions
        self.isolate_inserts = isolate_inserts
        self._max_partitions: int | None = None
        self.inserted_rows = 0
        self.acknowledged: dict[str, int] = {}
        self.refusals: list[Refusal] = []
        self._more_refused: dict[str, int] = {}
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
        """Store every buffered row durably: in ClickHouse, or fsync'd in the spool; rows the
        store refuses for good are set aside (see :meth:`report`) rather than spooled.

        Raises
        ------
        SpoolFull
            The store is away and the spool has no room; the rows stay buffered, retry later.
        StoreUnavailable
            The store is away and there is no spool; the rows stay buffered.
        """
        self._last_flush = self._clock()
        spool_empty = self._drain_spool(force=False)
        # Withdrawals last: they delete rows the other tables' rows of this flush may hold.
        for table in sorted(self._buffer, key=lambda t: t == WITHDRAWALS):
            left = self._buffer[table]
            if spool_empty:
                left, error = self._store(table, left, retries=self.retries)
                self._keep(table, left)
                if error is not None:
                    if self.spool is None:
                        raise error
                    spool_empty = False
                    self._probe_at = self._clock() + self._probe_delay
            if left:
                assert self.spool is not None  # the spool is empty, or there is one
                self.spool.append(table, left)  # SpoolFull leaves this and later tables buffered
                self.spooled_rows += len(left)
                log.warning(
                    "sink.spooled", table=table, rows=len(left), spool_bytes=self.spool.bytes
                )
            self._keep(table, [])

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

    # -- what was stored ---------------------------------------------------------------------

    def report(self) -> WriteReport:
        """Rows the store acknowledged per table, rows it refused (and why), rows still spooled."""
        more = [
            Refusal(
                table,
                rows,
                "later refusals",
                "see the sink.refused log lines",
                self.spool.directory if self.spool else None,
            )
            for table, rows in sorted(self._more_refused.items())
        ]
        return WriteReport(
            stored=dict(self.acknowledged),
            refused=[*self.refusals, *more],
            spooled_rows=self.spool.rows() if self.spool is not None else 0,
            spool_dir=self.spool.directory if self.spool is not None else None,
        )

    # -- internals ---------------------------------------------------------------------------

    def _keep(self, table: str, rows: list[Any]) -> None:
        """Set the rows still buffered for ``table``."""
        self._buffered += len(rows) - len(self._buffer.get(table, []))
        if rows:
            self._buffer[table] = rows
        else:
            self._buffer.pop(table, None)

    def _drain_spool(self, *, force: bool) -> bool:
        """Insert spooled batches in order; True once the spool is empty."""
        if not self.spool:
            return True
        if not force and self._clock() < self._probe_at:
            return False
        for batch in self.spool.batches():
            stored = self.acknowledged.get(batch.table, 0)
            left, error = self._store(batch.table, batch.rows, retries=0)
            if error is not None:
                if len(left) < len(batch.rows):
                    self.spool.shrink(batch, left)
                self._probe_delay = min(self._probe_delay * 2, self.max_backoff_s)
                self._probe_at = self._clock() + self._probe_delay
                return False
            self.spool.remove(batch)
            if self.acknowledged.get(batch.table, 0) > stored:  # not all of it set aside
                self.replayed_batches += 1
            log.info("sink.replayed", table=batch.table, rows=len(batch.rows), left=len(self.spool))
        self._probe_delay = self.backoff_s
        return True

    def _store(
        self, table: str, rows: list[Any], *, retries: int
    ) -> tuple[list[Any], StoreUnavailable | None]:
        """Insert ``rows``, a few partitions per insert; set aside rows refused for good.

        Returns the rows not stored because the store is away (in order), and that error.
        """
        chunks = self._chunks(table, rows)
        refused: list[tuple[list[Any], StoreError]] = []
        try:
            for i, chunk in enumerate(chunks):
                try:
                    self._insert(table, chunk, retries=retries)
                except StoreUnavailable as exc:
                    return [row for rest in chunks[i:] for row in rest], exc
                except StoreError as exc:
                    left, error = self._isolate(table, chunk, exc, refused, retries=retries)
                    if error is not None:
                        return [*left, *(row for rest in chunks[i + 1 :] for row in rest)], error
            return [], None
        finally:
            if refused:
                self._refuse(table, refused)

    def _isolate(
        self,
        table: str,
        rows: list[Any],
        exc: StoreError,
        refused: list[tuple[list[Any], StoreError]],
        *,
        retries: int,
    ) -> tuple[list[Any], StoreUnavailable | None]:
        """Find the rows of a refused insert that the store refuses, by halving it; the others
        go in. Errors about the whole insert (schema, limits) refuse all of it at once."""
        if not isinstance(exc, RowsRefused) or len(rows) == 1:
            refused.append((rows, exc))
            return [], None
        budget = self.isolate_inserts
        todo = [rows[len(rows) // 2 :], rows[: len(rows) // 2]]  # a stack: first half on top
        while todo:
            part = todo.pop()
            if budget <= 0:
                refused.append((part, exc))
                continue
            budget -= 1
            try:
                self._insert(table, part, retries=retries)
            except StoreUnavailable as error:
                return [*part, *(row for rest in reversed(todo) for row in rest)], error
            except RowsRefused as error:
                exc = error
                if len(part) == 1:
                    refused.append((part, error))
                else:
                    todo += [part[len(part) // 2 :], part[: len(part) // 2]]
            except StoreError as error:
                refused.append((part, error))
        return [], None

    def _refuse(self, table: str, refused: list[tuple[list[Any], StoreError]]) -> None:
        # Rows the store refuses for good must neither block the ones behind them (as a spooled
        # batch would, retried forever) nor be lost: they are set aside for an operator.
        rows = [row for part, _ in refused for row in part]
        self._types.pop(table, None)  # described again next time: `drifthouse migrate` may fix it
        reasons = list(dict.fromkeys(str(exc) for _, exc in refused))
        reason = reasons[0] + (
            f" (and {len(reasons) - 1} other messages)" if len(reasons) > 1 else ""
        )
        kept = self.spool.set_aside(table, rows) if self.spool is not None else None
        refusal = Refusal(table, len(rows), _which(table, rows), reason, kept)
        if len(self.refusals) < _KEEP_REFUSALS:
            self.refusals.append(refusal)
        else:  # a long-running worker refused again and again: count, the log has each
            self._more_refused[table] = self._more_refused.get(table, 0) + len(rows)
        log.error(
            "sink.refused",
            table=table,
            rows=len(rows),
            which=refusal.which,
            file=str(kept) if kept is not None else None,
            error=reason,
        )

    def _load_partition_limit(self) -> None:
        """Learn the server's ``max_partitions_per_insert_block`` (0: no limit), once."""
        try:
            result = call(
                "reading max_partitions_per_insert_block",
                self.client.query,
                "SELECT getSetting('max_partitions_per_insert_block')",
            )
        except StoreError:
            return  # ClickHouse's default until the next table is described
        self._max_partitions = int(result.result_rows[0][0])

    def _chunks(self, table: str, rows: list[Any]) -> list[list[Any]]:
        """``rows`` in groups each touching at most the server's limit of partitions per insert
        block, in order within each partition (where a key's rewrites live)."""
        spec = spec_for(table)
        if spec.partition is None or len(rows) <= 1:
            return [rows]
        try:
            ids = partition_ids(spec, rows)
        except (TypeError, ValueError, OverflowError):  # a malformed time: the insert says which
            return [rows]
        distinct = sorted(set(ids))
        server = _DEFAULT_MAX_PARTITIONS if self._max_partitions is None else self._max_partitions
        limit = min(server or len(distinct), self.max_partitions)
        if len(distinct) <= limit:
            return [rows]
        group = {pid: i // limit for i, pid in enumerate(distinct)}
        chunks: list[list[Any]] = [[] for _ in range((len(distinct) + limit - 1) // limit)]
        for row, pid in zip(rows, ids, strict=True):
            chunks[group[pid]].append(row)
        return chunks

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
            if self._max_partitions is None:
                self._load_partition_limit()
        return types

    def _insert(self, table: str, rows: list[Any], *, retries: int) -> None:
        spec = spec_for(table)
        columns = to_columns(spec, rows)
        delay = self.backoff_s
        for attempt in range(retries + 1):
            try:
                if table == WITHDRAWALS:  # no rows to insert: rows of metrics to delete
                    withdraw(self.client, self.database, rows)
                else:
                    insert(
                        f"inserting {len(rows)} rows into {table}",
                        self.client,
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
            self.acknowledged[table] = self.acknowledged.get(table, 0) + len(rows)
            log.debug("sink.flushed", table=table, rows=len(rows))
            return
