"""The live worker against the real broker with an embedding feature (docs/statistics.md,
"Embedding features"): the embedding part of the state crosses the wire in partials, survives a
worker killed mid-stream (SIGKILL) and replaced, and the stored rows equal an in-process
replay's to the last digit, drift on the shifted hours included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drifthouse.config import Config, load_config
from drifthouse.profiles.columns import build_profile
from drifthouse.simulate import Record
from tests.detectors.test_embedding import SHIFTED, UNIFORM, _cluster_embeddings
from tests.workers import (
    PARTITIONS,
    Workers,
    assert_same,
    kill_once_caught_up,
    produce_records,
    produce_stream,
    replayed_rows,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PER_HOUR = 600


def _records() -> list[Record]:
    """Six hours of ``fraud`` with a numeric feature and a 16-dimension embedding: the classes'
    shares shift from the fourth hour; a few values of the wrong length, zero or missing."""
    rng = np.random.default_rng(5)
    out = []
    for hour in range(6):
        embs = _cluster_embeddings(rng, PER_HOUR, UNIFORM if hour < 3 else SHIFTED)
        for i, emb in enumerate(embs):
            value: object = [float(v) for v in emb]
            if i % 97 == 1:
                value = value[:5]  # type: ignore[index]
            elif i % 89 == 2:
                value = [0.0] * 16
            elif i % 83 == 3:
                value = None
            ts = T0 + hour * HOUR + i * (HOUR // PER_HOUR)
            event = {
                "model": "fraud", "model_version": "v1", "ts": ts,
                "event_id": f"e{hour}-{i}", "features": {"x": float(rng.normal()), "emb": value},
                "prediction": float(rng.random()),
            }  # fmt: skip
            out.append(Record("predictions", b"fraud", json.dumps(event).encode(), ts))
    return out


def _profile() -> Any:
    rng = np.random.default_rng(6)
    embs = _cluster_embeddings(rng, 3_000, UNIFORM)
    return build_profile(
        model="fraud", model_version="v1", created_at="2026-01-01T00:00:00Z",
        source_digest="test", settings=Config().metrics,
        features={"x": [float(v) for v in rng.normal(size=3_000)],
                  "emb": [[float(v) for v in e] for e in embs]},
        prediction=[float(v) for v in rng.random(3_000)],
    )  # fmt: skip


def test_a_worker_killed_mid_stream_writes_the_embedding_rows_of_a_replay(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any
) -> None:
    profile = _profile()
    assert [(e.name, e.dim) for e in profile.embeddings] == [("emb", 16)]
    topic = make_topic(partitions=PARTITIONS)
    records = _records()
    half = len(records) // 2 + PER_HOUR // 3
    produce_records(kafka_bootstrap, topic, records[:half])
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "embedding", {"fraud": profile},
        extra={"windows": [{"size": "1h"}]},
    )  # fmt: skip
    cfg = load_config(config)
    workers = Workers(config, PARTITIONS)
    try:
        kill_once_caught_up(workers, workers.start())
        closed_until = produce_stream(kafka_bootstrap, topic, records[half:])
        second = workers.start()
        workers.wait_done(cfg, len(records))
        assert workers.status(second)["merger"]["incomplete_windows"] == 0
    finally:
        workers.stop_all()
    want = replayed_rows(config, closed_until)
    live = stored_rows(config)
    mmd = {k[0]: v[0] for k, v in want.items() if k[4] == "emb" and k[6] == "embedding_mmd2"}
    assert sorted(mmd) == [T0 + h * HOUR for h in range(6)]
    assert max(mmd[T0 + h * HOUR] for h in range(3)) < min(mmd[T0 + h * HOUR] for h in (3, 4, 5))
    wrong = {k[0]: v[0] for k, v in want.items() if k[4] == "emb" and k[6] == "wrong_length"}
    assert sum(wrong.values()) == sum(1 for h in range(6) for i in range(PER_HOUR) if i % 97 == 1)
    assert_same(live, want)
