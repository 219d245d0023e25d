"""The worker's health page, progress logs and memory housekeeping.

``GET /drifthouse/health/`` answers :func:`health_report` as JSON: partitions, lag, events per
second, open windows and the state of the merge shards this worker holds. :class:`Housekeeping` runs at every heartbeat:
it collects reference cycles and logs progress every ten seconds.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Mapping
from typing import Any

from drifthouse.app import memory
from drifthouse.app.merge_loop import Merger
from drifthouse.app.source_side import SourceSide
from drifthouse.kafka.source import AssignedReader
from drifthouse.logs import get_logger

__all__ = ["FULL_COLLECT_EVERY_TICKS", "Housekeeping", "health_report"]

log = get_logger("worker")

FULL_COLLECT_EVERY_TICKS = 30
"""Heartbeats (seconds) between two full collections of reference cycles, each followed by
giving free memory back (see :mod:`drifthouse.app.memory`); the young generations are
collected at every heartbeat."""


def health_report(
    reader: AssignedReader, source: SourceSide, mergers: Mapping[int, Merger], uptime: float
) -> dict[str, Any]:
    """Progress and health: partitions, lag, events/s, open windows, the merge shards held
    (``mergers``, by shard; ``merger``: the lowest shard's, ``None`` without one)."""
    partitions = {}
    for p, stage in sorted(source.stages.items()):
        high = reader.highwater(p)
        partitions[str(p)] = {
            "position": stage.next_offset,
            "lag": None if high is None else max(high - stage.next_offset, 0),
            "watermark": stage.watermark,
            "open_panes": stage.windows.open_windows(),
            "reread_messages": source.reread.get(p, 0),
        }
    stats = source.stats
    return {
        "status": "ok",
        "uptime_s": round(uptime, 1),
        "events": stats.events,
        "invalid_events": stats.invalid,
        "late_events": stats.late,
        "events_per_second": round(stats.events / uptime, 1) if uptime > 0 else 0.0,
        "source_seconds": source.seconds.rounded(2),
        # Per generation: collections so far and objects they found unreachable (cycles).
        "gc": [[s["collections"], s["collected"]] for s in gc.get_stats()],
        "partitions": partitions,
        # Every partition this worker has held, those it no longer holds included.
        "reread_messages": {str(p): n for p, n in sorted(source.reread.items())},
        # Per partition, how many times the group took it from this worker.
        "revocations": {str(p): n for p, n in sorted(source.revocations.items())},
        "merger": _merger_report(mergers[min(mergers)]) if mergers else None,
        "mergers": {str(s): _merger_report(m) for s, m in sorted(mergers.items())},
    }


def _merger_report(merger: Merger) -> dict[str, Any]:
    stage = merger.side.stage
    labels = stage.labels
    return {
        "pending_windows": len(stage.pending_keys()),
        "spooled_batches": merger.writes.pending_batches,
        "label_windows_waiting": labels.windows.waiting(stage.ready_until())
        if labels is not None
        else 0,
        "label_join_entries": labels.join.entries if labels is not None else 0,
        "windows_written": stage.stats.windows,
        # Derived windows (`from`) held back for stored base states that are missing.
        "incomplete_windows": stage.derived.incomplete,
        "rows_written": stage.stats.rows,
        "next_offset": merger.side.next_offset,
        "rebuilt_from": merger.rebuilt_from,
        "state_lost": merger.state_lost,
    }


class Housekeeping:
    """Run at every heartbeat (once a second): collect cycles, log progress."""

    def __init__(self) -> None:
        self.ticks = 0

    async def tick(self, source: SourceSide, merging: bool) -> None:
        self.ticks += 1
        # In steady state the worker frees as much as it allocates, and Python's collector,
        # which runs on the difference, never would: cycles are collected here instead.
        if self.ticks % FULL_COLLECT_EVERY_TICKS:
            memory.collect(full=False)
        else:
            memory.collect(full=True)
            await asyncio.get_running_loop().run_in_executor(None, memory.trim)
        if self.ticks % 10:
            return
        log.info(
            "worker.progress",
            partitions=sorted(source.stages),
            events=source.stats.events,
            invalid=source.stats.invalid,
            late=source.stats.late,
            open_panes=sum(s.windows.open_windows() for s in source.stages.values()),
            merger=merging,
            source_seconds=source.seconds.rounded(1),
        )
