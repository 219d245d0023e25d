"""``docs/metrics.md`` names every metric the pipeline writes, in the scopes it writes them."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.simulate import Record, Scenario, simulate
from drifthouse.sinks import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message
from tests.workers import profiles_from

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def _documented() -> dict[str, str]:
    """Metric name -> the scope column of its row in docs/metrics.md."""
    rows: dict[str, str] = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            rows[name] = cells[1]
    return rows


@pytest.fixture(scope="module")
def written() -> dict[str, set[str]]:
    return run_pipeline()


def _with_embedding(records: list[Record]) -> list[Record]:
    """``fraud``'s predictions with an embedding feature ``emb`` (4 numbers), a few of the
    wrong length, all zeros or holding a null: the embedding metrics' rows."""
    rng = np.random.default_rng(9)
    out = []
    for i, r in enumerate(records):
        if r.topic == "predictions" and json.loads(r.value)["model"] == "fraud":
            event = json.loads(r.value)
            emb: list[float | None] = [float(v) for v in rng.normal(size=4) + 1.0]
            if i % 50 == 7:
                emb = emb[:3]
            elif i % 70 == 9:
                emb = [0.0] * 4
            elif i % 90 == 11:
                emb[1] = None
            event["features"]["emb"] = emb
            r = dataclasses.replace(r, value=json.dumps(event).encode())
        out.append(r)
    return out


def run_pipeline() -> dict[str, set[str]]:
    """Metric name -> scopes, from a simulated day with labels, segments, metric events, a
    canary version serving every tenth prediction and a shadow of ``fraud``."""
    sc = Scenario.demo(days=0.5, rate_per_min=6, reference_hours=4)
    records = _with_embedding(list(simulate(sc, seed=5, label_delay_min=(1, 30))))
    config = Config.model_validate(
        {
            "windows": [{"size": "1h"}],
            "metrics": {"change_detection": {"warmup": 2}, "attribution_top_k": 3},
            "models": {"fraud": {}, "fraud-shadow": {"shadow_of": "fraud"}},
        }
    )
    predictions = [r for r in records if r.topic == "predictions"]
    # The reference's labels give the profile a calibration: estimated_* and estimation_error_*.
    labels = {
        (e := json.loads(r.value))["event_id"]: e["label"] for r in records if r.topic == "labels"
    }
    reference = [r for r in predictions if r.ts_ms < sc.reference_end_ms]
    profiles = profiles_from(reference, config, labels=labels)
    sink = MemorySink()
    pipeline = Pipeline(
        config=config, profiles=profiles, sink=sink, dead_letters=MemoryDeadLetters()
    )
    first_label: Message | None = None
    percentage = False  # one score sent as a percentage: no probability (cbpe_unusable), and
    # its label no metric can use (labels_unusable)
    for i, r in enumerate(records):
        message = Message(r.value, 0, i, topic=r.topic)
        if r.topic == "predictions" and i % 10 == 0:  # a canary version beside the main one
            event = json.loads(r.value)
            event["model_version"] = f"{event.get('model_version', '')}-canary"
            message = Message(json.dumps(event).encode(), 0, i, topic=r.topic)
        elif r.topic == "predictions" and not percentage and r.ts_ms >= sc.reference_end_ms:
            event = json.loads(r.value)
            if event["model"] == "fraud":
                event["prediction"] = 87.0
                message = Message(json.dumps(event).encode(), 0, i, topic=r.topic)
                percentage = True
        if r.topic == "predictions":
            pipeline.process([message])
            event = json.loads(message.value)
            if event["model"] == "fraud" and i % 3:  # a shadow scoring the same request
                event["model"] = "fraud-shadow"
                shadow = Message(json.dumps(event).encode(), 1, i, topic=r.topic)
                pipeline.process([shadow])
        else:
            pipeline.add_labels([message])
            if first_label is None:
                first_label = message
    # A second label for one prediction, and a label whose prediction never comes.
    assert first_label is not None
    stray = json.loads(first_label.value) | {"event_id": "never-predicted"}
    pipeline.add_labels(
        [
            Message(first_label.value, 0, len(records), topic="labels"),
            Message(json.dumps(stray).encode(), 0, len(records) + 1, topic="labels"),
        ]
    )
    events = [
        json.dumps(
            {"model": "fraud", "ts": sc.start_ms + i * 60_000, "metrics": {"cpu_util": 0.5, "events": 1}}
        ).encode()
        for i in range(0, 600, 5)
    ]  # fmt: skip
    pipeline.add_metric_events([Message(v, 0, i) for i, v in enumerate(events)])
    pipeline.finish()
    sink.flush()
    found: dict[str, set[str]] = defaultdict(set)
    for row in sink.rows("metrics"):
        scope = {"": "model", "__prediction__": "prediction"}.get(row.feature, "feature")
        found[row.metric].add(scope + ("+segment" if row.segment else ""))
    return found


def test_every_metric_written_is_documented(written: dict[str, set[str]]) -> None:
    documented = _documented()
    names = {n if n != "cpu_util_max" else "<name>_max" for n in written}
    names = {n if n != "cpu_util" else "<name>" for n in names}
    missing = sorted(names - set(documented))
    assert missing == [], f"not in docs/metrics.md: {missing}"
    assert len(written) >= 40  # the run reached labels, segments, importance and metric events


def test_documented_scopes_match_what_is_written(written: dict[str, set[str]]) -> None:
    documented = _documented()
    for name, scopes in written.items():
        doc = documented.get(name, documented.get("<name>", ""))
        for scope in scopes:
            kind = scope.split("+")[0]
            if name == "change_detected":
                continue  # its feature column names the series
            assert kind in doc or (kind == "feature" and "feature" in doc), (name, scope, doc)
            if scope.endswith("+segment") and not name.endswith("_diff"):
                assert "+segment" in doc, (name, scope, doc)


def test_every_documented_metric_is_written(written: dict[str, set[str]]) -> None:
    # Placeholders stand for metric-event names; labels are counted as unmatched or expired
    # only once the label horizon (7 days) has passed, beyond this half day.
    later = {"<name>", "<name>_max", "labels_unmatched", "labels_expired"}
    assert sorted(set(_documented()) - set(written) - later) == []
