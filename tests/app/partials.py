"""The partials log two source partitions of a small simulated stream publish (labels forwarded
beside), for the tests of the worker's merge side and merge loop."""

from __future__ import annotations

import json
from typing import Any

from drifthouse.app.assembly import RunParts
from drifthouse.app.source_side import SourceSide
from drifthouse.config import Config
from drifthouse.kafka.partials import encode_side_events
from drifthouse.simulate import simulate
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message

CONFIG = Config.model_validate(
    {
        "windows": [{"size": "1h"}, {"size": "30m", "hop": "10m"}],
        "metrics": {"label_rewrite_every": "1ms"},
    }
)
PARTITIONS = 2


def partials_log(small_stream: Any) -> list[bytes]:
    """The partials log: two source partitions' output, with the labels forwarded beside."""
    source = SourceSide(RunParts.of(CONFIG, small_stream.profiles), MemoryDeadLetters())
    for p in range(PARTITIONS):
        source.open(p, None)
    offsets = [0] * PARTITIONS
    msgs = []
    for i, r in enumerate(small_stream.records):
        p = i % PARTITIONS
        msgs.append(Message(r.value, p, offsets[p], "predictions", r.key))
        offsets[p] += 1
    labels = [r for r in simulate(small_stream.scenario, seed=3) if r.topic == "labels"]
    out: list[bytes] = []
    label_at = 0
    for lo in range(0, len(msgs), 500):
        out += [o.value for o in source.process(msgs[lo : lo + 500])]
        # The labels that came in meanwhile, forwarded by another worker, 200 at a time.
        upto = min(len(labels), label_at + 200)
        if upto > label_at:
            values = [r.value for r in labels[label_at:upto]]
            out.append(encode_side_events("labels", 0, list(range(label_at, upto)), values))
            label_at = upto
    # A far-ahead event in every partition closes every window.
    ahead = max(r.ts_ms for r in small_stream.records) + 3 * 3_600_000
    event = {"model": "fraud", "ts": ahead, "features": {}}
    sentinels = [
        Message(json.dumps(event).encode(), p, offsets[p], "predictions", b"fraud")
        for p in range(PARTITIONS)
    ]
    out += [o.value for o in source.process(sentinels)]
    return out
