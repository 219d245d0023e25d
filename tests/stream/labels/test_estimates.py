"""Estimated next to realized: the label windows of a model with a calibrated profile carry
``estimation_error_<metric> = estimated_<metric> - <metric>``, through a whole pipeline."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.errors import SketchError
from drifthouse.rows import MetricRow
from drifthouse.simulate import Scenario, simulate
from drifthouse.sinks import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.labels.estimates import HeldEstimates
from drifthouse.stream.labels.stage import LabelStage
from drifthouse.stream.sources import Message
from tests.workers import profiles_from


def _row(metric: str, value: float, **kw: object) -> MetricRow:
    base: dict[str, object] = dict(
        window_start=0, window_end=3_600_000, window="1h", model="m", model_version="1",
        feature="", segment="", metric=metric, value=value, n=10, run_id="r",
    )  # fmt: skip
    return MetricRow(**(base | kw))  # type: ignore[arg-type]


def test_errors_are_estimated_minus_realized_per_window() -> None:
    held = HeldEstimates()
    held.note(
        [
            _row("estimated_accuracy", 0.9),
            _row("estimated_accuracy_lower", 0.8),
            _row("estimated_f1", 0.7, segment="country=DE"),  # segments are not estimated
            _row("estimated_recall", 0.6, window_start=3_600_000, window_end=7_200_000),
        ]
    )
    errors = held.errors(
        [_row("accuracy", 0.85), _row("f1", 0.7), _row("labels", 10.0), _row("recall", 0.5)]
    )
    assert [(r.metric, r.window_start) for r in errors] == [("estimation_error_accuracy", 0)]
    assert errors[0].value == 0.9 - 0.85
    assert errors[0].n == 10
    restored = HeldEstimates.from_bytes(held.to_bytes())
    assert restored.errors([_row("accuracy", 0.85)]) == errors
    held.forget(ready_until=3_600_000 + 2 * 1_000 + 1, horizon_ms=1_000)
    assert len(held) == 1  # the window ending later stays
    with pytest.raises(SketchError, match="held estimates"):
        HeldEstimates.from_bytes(b"\x01")


def test_a_label_stage_snapshot_from_before_estimates_still_loads() -> None:
    import msgspec

    stage = LabelStage.from_config(Config(), profiles={})
    stage.note_estimates([_row("estimated_accuracy", 0.9)])
    again = LabelStage.from_config(Config(), profiles={})
    again.restore(stage.to_bytes())
    assert len(again.estimates) == 1
    join, windows, _ = msgspec.msgpack.decode(stage.to_bytes(), type=tuple[bytes, bytes, bytes])
    old = LabelStage.from_config(Config(), profiles={})
    old.restore(msgspec.msgpack.encode((join, windows)))
    assert len(old.estimates) == 0


def test_a_pipeline_writes_estimates_and_their_errors() -> None:
    sc = Scenario.demo(days=0.5, rate_per_min=6, reference_hours=4)
    records = list(simulate(sc, seed=5, label_delay_min=(1, 30)))
    config = Config.model_validate({"windows": [{"size": "1h"}]})
    predictions = [r for r in records if r.topic == "predictions"]
    labels = {
        (e := json.loads(r.value))["event_id"]: e["label"] for r in records if r.topic == "labels"
    }
    reference = [r for r in predictions if r.ts_ms < sc.reference_end_ms]
    profiles = profiles_from(reference, config, labels=labels)
    assert profiles["fraud"].calibration is not None
    sink = MemorySink()
    pipeline = Pipeline(
        config=config, profiles=profiles, sink=sink, dead_letters=MemoryDeadLetters()
    )
    for i, r in enumerate(records):
        message = Message(r.value, 0, i, topic=r.topic)
        if r.topic == "predictions":
            pipeline.process([message])
        else:
            pipeline.add_labels([message])
    pipeline.finish()
    sink.flush()
    latest: dict[tuple[int, str, str], MetricRow] = {}
    for row in sink.rows("metrics"):
        if row.model == "fraud" and row.segment == "" and row.feature == "":
            key = (row.window_start, row.model_version, row.metric)
            if key not in latest or row.computed_at >= latest[key].computed_at:
                latest[key] = row
    by_window: dict[tuple[int, str], dict[str, float]] = defaultdict(dict)
    for (start, version, metric), row in latest.items():
        by_window[(start, version)][metric] = row.value
    checked = 0
    for values in by_window.values():
        for m in ("accuracy", "precision", "recall", "f1", "roc_auc"):
            if f"estimation_error_{m}" in values:
                assert values[f"estimation_error_{m}"] == values[f"estimated_{m}"] - values[m]
                checked += 1
    assert checked >= 5 * 8  # every metric of most of the half day's windows


def test_an_estimate_noted_after_its_label_window_gives_the_errors_then() -> None:
    """A derived window's estimate may come after its label window was written (it waits for
    its stored base states): the realized values kept (``keep``) give the errors at ``note``."""
    held = HeldEstimates()
    realized = [_row("accuracy", 0.85, window="1d", n=40), _row("f1", 0.5, segment="a=b")]
    assert held.errors(realized, keep=True) == []
    assert held.errors([_row("accuracy", 0.8)]) == []  # not kept: a stream window's
    restored = HeldEstimates.from_bytes(held.to_bytes())
    estimated = [_row("estimated_accuracy", 0.9, window="1d", computed_at=7),
                 _row("estimated_f1", 0.6, window="1d")]  # fmt: skip
    for h in (held, restored):
        errors = h.note(estimated)
        assert errors == [
            _row("estimation_error_accuracy", 0.9 - 0.85, window="1d", n=40, computed_at=7)
        ]
        assert h.note(estimated) == []  # the same estimate again: already written
        assert h.note([_row("estimated_accuracy", 0.95, window="1d")])[0].value == 0.95 - 0.85


def test_held_estimates_from_before_realized_values_were_kept_still_load() -> None:
    import msgspec

    old = msgspec.msgpack.encode([("1d", 0, 86_400_000, "m", "1", {"accuracy": 0.9})])
    held = HeldEstimates.from_bytes(old)
    assert held.errors([_row("accuracy", 0.85, window="1d")])[0].value == 0.9 - 0.85
