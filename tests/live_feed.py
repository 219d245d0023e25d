"""A live worker's view of a stream, in one process: every message at its own event time."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message


def live_run(
    config: Config,
    preds: Sequence[bytes],
    labels: Sequence[bytes],
    profiles: Mapping[str, Profile] | None = None,
) -> MemorySink:
    """What a live worker sees: every message at its own event time (ties: the prediction
    first), predictions of one partition, labels as they arrive; the sink, flushed."""
    sink = MemorySink()
    pipe = Pipeline(
        config=config, profiles=dict(profiles or {}), sink=sink,
        dead_letters=MemoryDeadLetters(), run_id="r",
    )  # fmt: skip
    timed = [(json.loads(v)["ts"], 0, i, v) for i, v in enumerate(preds)]
    timed += [(json.loads(v)["ts"], 1, i, v) for i, v in enumerate(labels)]
    timed.sort()
    run: list[Message] = []
    for _, kind, i, v in timed:
        if kind == 0:
            run.append(Message(v, 0, i))
            continue
        if run:
            pipe.process(run)
            run = []
        pipe.add_labels([Message(v, 0, i)])
    if run:
        pipe.process(run)
    pipe.finish()
    sink.flush()
    return sink
