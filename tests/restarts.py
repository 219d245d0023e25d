"""A pipeline over three partitions (events keyed by event id) that 'crashes' and resumes, as a
restarted worker does: from each partition's checkpoint and the merge stage's snapshot."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.sinks import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message


def run_with_crashes(
    config: Config, events: Sequence[dict[str, Any]], crash_after: Sequence[int], batch: int
) -> MemorySink:
    """The sink of a run that crashes after each count of messages in ``crash_after`` and
    resumes, re-reading each partition from its checkpoint (``[]``: an uninterrupted run)."""
    offsets = [0, 0, 0]
    msgs = []
    for e in events:
        p = zlib.crc32(e["event_id"].encode()) % 3
        msgs.append(Message(json.dumps(e).encode(), p, offsets[p], "predictions", b""))
        offsets[p] += 1
    sink = MemorySink()
    checkpoints: dict[int, Any] = {}
    snapshot = None
    position = 0
    for stop in [*crash_after, len(msgs)]:
        pipe = Pipeline(
            config=config, profiles={}, sink=sink, dead_letters=MemoryDeadLetters(),
            run_id="t", computed_at=lambda: 0,
        )  # fmt: skip
        pipe.expect_partitions(range(3))
        for p, cp in checkpoints.items():
            pipe.stage(p).restore(cp)
        if snapshot is not None:
            pipe.merge.restore_snapshot(snapshot)
        again = [m for m in msgs[:position] if _from(checkpoints, m) <= m.offset]
        todo = again + msgs[position:stop]
        for lo in range(0, len(todo), batch):
            pipe.process(todo[lo : lo + batch])
        if stop == len(msgs):
            pipe.finish()
        sink.flush()
        checkpoints = {p: pipe.checkpoint(p) for p in range(3)}
        snapshot = pipe.merge.snapshot()
        position = stop
    return sink


def _from(checkpoints: dict[int, Any], m: Message) -> int:
    """Where a restarted partition reads from: its checkpoint's offset (0 without one)."""
    cp = checkpoints.get(m.partition)
    return cp.offset if cp is not None else 0
