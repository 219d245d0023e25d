"""A replay with a 7-day label horizon and ``metrics.late_labels``, then the late join in
ClickHouse, ends with the rows of a replay whose horizon holds every label (real engine)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from drifthouse.app.replay import replay
from drifthouse.config import Config
from drifthouse.sinks import ClickHouseSink, migrate
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.labels.late import join_late_labels

HOUR = 3_600_000
DAY = 24 * HOUR
START = 1_767_225_600_000  # 2026-01-01
COUNTERS = {"labels_unmatched", "labels_expired", "labels_duplicate"}


def _config(horizon: str, *, late: bool) -> Config:
    return Config.model_validate(
        {
            "windows": [{"size": "1h"}, {"size": "1d"}],
            "metrics": {"label_horizon": horizon, "late_labels": late},
        }
    )


def _files(tmp_path: Path) -> tuple[str, str]:
    """Two models nobody profiled, three months; labels 1 hour to 60 days late, in label-time
    order as a labels topic holds them; string ids; a segment."""
    rng = np.random.default_rng(3)
    preds, labels = [], []
    for i in range(2_000):
        ts = START + i * 65 * 60_000
        model = "claims-triage" if i % 4 else "refund-abuse"
        eid = "clm-" + hashlib.blake2b(str(i).encode(), digest_size=10).hexdigest()
        score = float(rng.beta(2, 2))
        preds.append(
            {"model": model, "model_version": "2026.1", "ts": ts, "event_id": eid, "prediction": score,
             "features": {"amount": float(rng.gamma(2, 40))},
             "segment": {"channel": ["web", "app", "phone"][i % 3]}}
        )  # fmt: skip
        if rng.random() < 0.85:
            delay = int(rng.integers(HOUR, 60 * DAY))
            labels.append(
                {"event_id": eid, "model": model, "ts": ts + delay, "label": int(rng.random() < score)}
            )  # fmt: skip
    labels.sort(key=lambda d: d["ts"])
    p, lab = tmp_path / "preds.jsonl", tmp_path / "labels.jsonl"
    p.write_text("".join(json.dumps(d) + "\n" for d in preds))
    lab.write_text("".join(json.dumps(d) + "\n" for d in labels))
    return f"file:{p}", f"file:{lab}"


def _rows(client: Any, database: str, run_id: str) -> dict[tuple[Any, ...], tuple[float, int]]:
    result = client.query(
        "SELECT model, window, toUnixTimestamp64Milli(window_start), model_version, segment, "
        f"feature, metric, value, n FROM `{database}`.metrics FINAL WHERE run_id = {{run:String}}",
        parameters={"run": run_id},
    )
    return {
        tuple(r[:7]): (float(r[7]), int(r[8]))
        for r in result.result_rows
        if r[3] != "unknown" and r[6] not in COUNTERS
    }


def test_replay_then_late_join_equals_a_long_horizon(
    tmp_path: Path, ch_database: tuple[Any, str]
) -> None:
    client, database = ch_database
    migrate(client, database)
    source, labels = _files(tmp_path)
    sink = ClickHouseSink(client, database=database)
    for run_id, config in (
        ("long", _config("400d", late=False)),
        ("short", _config("7d", late=True)),
    ):
        replay(config, source=source, labels=labels, sink=sink, run_id=run_id, profiles={},
               dead_letters=MemoryDeadLetters())  # fmt: skip
    long, short = _rows(client, database, "long"), _rows(client, database, "short")
    assert long.keys() >= short.keys()
    assert sum(short.get(k) != v for k, v in long.items()) > 100  # the short horizon missed labels
    late = _config("7d", late=True)
    report = join_late_labels(client, database, late, {}, sink, run_id="short")
    assert report.models == 2
    assert report.pairs > 300
    assert report.waiting == 0
    joined = _rows(client, database, "short")
    wrong = {k: (joined.get(k), v) for k, v in long.items() if joined.get(k) != v}
    assert not wrong, f"{len(wrong)} of {len(long)} rows differ, e.g. {list(wrong.items())[:3]}"
    assert joined.keys() == long.keys()
    assert {"accuracy", "roc_auc", "labels_coverage", "psi"} <= {k[6] for k in joined}
