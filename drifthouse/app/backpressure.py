"""The merger and a store that is away or slow: wait, spool, slow down; never lose a row.

A write that fills the sink's buffer flushes; when the store is away and the spool is full (or
absent), the rows stay buffered (:class:`WritesWait`) and the flush after the batch
(:func:`flush_when_possible`) waits for the store, so nothing is committed before its rows are
stored. While the sink asks to slow down, the merger reads no more partials
(:func:`wait_while_pressed`): they stay in Kafka, so memory does not grow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from drifthouse.errors import SpoolFull, StoreError, StoreUnavailable
from drifthouse.logs import get_logger
from drifthouse.sinks.base import Sink

__all__ = ["WritesWait", "flush_when_possible", "open_when_free", "wait_while_pressed"]

log = get_logger("worker")


class WritesWait:
    """The merger's sink: a write that fills the buffer flushes, and when that flush finds the
    store away with no room left to spool, the rows stay buffered instead of failing the
    merger in the middle of a batch. The flush after the batch (:func:`flush_when_possible`)
    then waits for the store, so nothing is committed before its rows are stored."""

    def __init__(self, sink: Sink) -> None:
        self.inner = sink

    def write(self, rows: Iterable[Any]) -> None:
        try:
            self.inner.write(rows)
        except (StoreUnavailable, SpoolFull) as exc:  # the rows stay in the sink's buffer
            log.warning("merger.store_waiting", reason=str(exc), retry_s=0.0)

    def flush(self) -> None:
        self.inner.flush()

    def drain(self) -> None:
        """Try to store what waits in the spool; while the store is still away, leave it."""
        try:
            self.inner.flush()
        except (StoreUnavailable, SpoolFull):
            pass
        except StoreError as exc:  # the rows stay buffered; the next batch's flush decides
            log.error("merger.drain_failed", error=str(exc))

    @property
    def pending_batches(self) -> int:
        """Batches waiting in the sink's spool for the store to come back."""
        return int(getattr(self.inner, "pending_batches", 0))

    def close(self) -> None:
        self.inner.close()

    @property
    def pressure(self) -> float:
        return self.inner.pressure


async def flush_when_possible(sink: Sink) -> None:
    """Flush; while the store is away and the spool is full (or absent), wait and try again.

    Waiting here is the backpressure: the merger reads no more partials, which stay in Kafka,
    so memory does not grow; the source partitions' checkpoints keep being committed because
    their partials are safely in Kafka.
    """
    loop = asyncio.get_running_loop()
    delay = 0.5
    while True:
        try:
            await loop.run_in_executor(None, sink.flush)
            return
        except (StoreUnavailable, SpoolFull) as exc:
            log.warning("merger.store_waiting", reason=str(exc), retry_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def wait_while_pressed(sink: Sink) -> None:
    """Before reading more partials: while the sink asks to slow down, drain it first."""
    if not sink.pressure:
        return
    should_pause = getattr(sink, "should_pause", None)
    while should_pause is not None and should_pause():
        log.info("merger.paused", pressure=round(sink.pressure, 2))
        await asyncio.sleep(1.0)
        await flush_when_possible(sink)


def open_when_free(open_sink: Callable[[], Sink], timeout_s: float = 120.0) -> Sink:
    """``open_sink()``; while another process still holds the embedded store (the previous
    merger, letting go), wait up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return open_sink()
        except StoreError as exc:
            locked = "lock" in str(exc).lower() or "EmbeddedServer" in str(exc)
            if not locked or time.monotonic() > deadline:
                raise
            log.info(
                "merger.waiting_for_store", reason="another process still holds the embedded store"
            )
            time.sleep(0.5)
