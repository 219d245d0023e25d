"""The label stage: sketches from profiles, decoded labels flowing through, rewrites, rows, PII ids."""

from __future__ import annotations

import numpy as np
import pytest

from drifthouse.events import EventDecoder, LabelEvent, PredictionEvent
from drifthouse.stream.labels import LabelJoin, LabelStage, LabelWindows, sketch_for_model
from tests.detectors.strategies import make_profile
from tests.stream.labels.samples import DAY, HOUR, SK, SPECS, lab, make_windows, metrics_of, rec


def test_sketch_for_model_from_profile() -> None:
    p = make_profile({"x": np.arange(100.0)}, prediction=["a", "b"] * 50, label=["a", "b"] * 50)
    sk = sketch_for_model(p, threshold=0.7)
    assert sk.task == "classification"
    assert set(sk.classes.classes) == {"a", "b"}
    assert sketch_for_model(None, task="regression").task == "regression"


def test_decoded_labels_flow_through() -> None:
    dec = EventDecoder(LabelEvent)
    ok, bad = dec.decode_batch(
        [
            b'{"event_id": "a", "model": "m", "ts": "2026-01-01T00:00:00Z", "label": "true"}',
            b'{"event_id": "b", "model": "m", "ts": 5, "label": null}',
        ]
    )
    assert len(bad) == 1
    join = LabelJoin()
    join.add_predictions([rec("a", 1_767_225_000_000)])
    pairs = join.add_labels([e for _, e in ok])
    lw = make_windows()
    lw.add_pairs(pairs)
    (w,) = [w for w in lw.flush() if w.spec_index == 0]
    assert metrics_of(lw, w)[("", "recall")] == 1.0


def test_rewrites_are_spaced_in_event_time() -> None:
    lw = LabelWindows(SPECS[:1], lambda m: SK, rewrite_every_ms=HOUR)
    join = LabelJoin()
    preds = [rec(f"e{i}", i) for i in range(10)]
    lw.add_predictions(preds)
    join.add_predictions(preds)
    assert [w.rewrite for w in lw.flush(ready_until=HOUR)] == [False]
    lw.add_pairs(join.add_labels([lab("e0", HOUR + 1)]))
    assert lw.flush(ready_until=HOUR) == []  # written at clock 9 ms; too soon
    lw.add_pairs(join.add_labels([lab("e1", 2 * HOUR)]))
    (w,) = lw.flush(ready_until=HOUR)
    assert w.rewrite
    assert metrics_of(lw, w)[("", "labels")] == 2.0
    lw.add_pairs(join.add_labels([lab("e2", 2 * HOUR + 1)]))
    assert lw.flush(ready_until=HOUR) == []
    assert [metrics_of(lw, w)[("", "labels")] for w in lw.flush()] == [3.0]  # final: all


def test_rows_keep_their_keys_across_rewrites() -> None:
    lw, join = make_windows(), LabelJoin()
    preds = [rec(f"e{i}", i, segment=[("c", "x" if i % 2 else "y")]) for i in range(10)]
    lw.add_predictions(preds)
    join.add_predictions(preds)
    lw.add_pairs(join.add_labels([lab(f"e{i}", HOUR, 1) for i in range(5)]))
    (w,) = [w for w in lw.flush() if w.spec_index == 0]
    first = lw.rows(w, run_id="live", computed_at=1)
    lw.add_pairs(join.add_labels([lab(f"e{i}", 2 * DAY, 0) for i in range(5, 10)]))
    (w2,) = [w for w in lw.flush() if w.spec_index == 0]
    second = lw.rows(w2, run_id="live", computed_at=2)
    assert {r.key() for r in first} <= {r.key() for r in second}
    by_key = {(r.segment, r.metric): r for r in second}
    assert by_key[("", "labels_coverage")].value == 1.0
    assert by_key[("", "labels_coverage")].n == 10
    assert by_key[("c=x", "labels")].n == 5
    assert by_key[("c", "demographic_parity_diff")].window == "1h"


def test_label_stage_from_config_snapshot_and_rows() -> None:
    from drifthouse.config import Config

    config = Config.model_validate(
        {"windows": [{"size": "1h"}], "models": {"m": {"threshold": 0.8}}}
    )

    def events(lo: int, hi: int) -> list[PredictionEvent]:
        return [
            PredictionEvent(
                model="m", ts_ms=i * 60_000, features={}, event_id=f"e{i}", prediction=0.7
            )
            for i in range(lo, hi)
        ]

    stage = LabelStage.from_config(config, profiles={})
    stage.add_predictions(events(0, 30))
    stage.add_labels([lab(f"e{i}", HOUR + i, 1) for i in range(0, 30, 2)])
    copy = LabelStage.from_config(config, profiles={})
    copy.restore(stage.to_bytes())
    for s in (stage, copy):
        s.add_predictions(events(30, 60))
        s.add_labels([lab(f"e{i}", 2 * HOUR, 1) for i in range(30, 60, 2)])
    a = stage.flush(None, run_id="r", computed_at=5)
    b = copy.flush(None, run_id="r", computed_at=5)
    assert a == b
    v = {(r.segment, r.metric): r.value for r in a}
    assert v[("", "recall")] == 0.0  # 0.7 is below this model's threshold of 0.8
    assert v[("", "labels_coverage")] == 0.5


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"pii": ["event_id"]}, id="global"),
        pytest.param({"models": {"m": {"pii": ["event_id"]}}}, id="per-model"),
    ],
)
def test_pii_event_ids_join_as_keyed_hashes(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, object]
) -> None:
    """Labels meet their predictions when ``event_id`` is PII, and the label join (saved in the
    merger's snapshots) holds only hashes of the ids."""
    monkeypatch.setenv("DRIFTHOUSE_PII_KEY", "p" * 32)
    from drifthouse.config import Config
    from drifthouse.events import LabelEvent, PredictionEvent
    from drifthouse.stream.labels import LabelStage

    stage = LabelStage.from_config(Config.model_validate(settings), profiles={})
    ids = [f"ann{i}@example.com" for i in range(4)]
    stage.add_predictions(
        [
            PredictionEvent(model="m", ts_ms=1_000 + i, features={}, event_id=eid, prediction=0.9)
            for i, eid in enumerate(ids)
        ]
    )
    held = stage.to_bytes()
    stage.add_labels([LabelEvent(event_id=eid, model="m", ts_ms=9_000, label=1) for eid in ids])
    rows = stage.flush(None, run_id="live", computed_at=0)
    coverage = [r.value for r in rows if r.metric == "labels_coverage" and r.segment == ""]
    assert coverage == [1.0]
    assert b"example.com" not in held


def test_sketch_for_model_maps_labels_of_a_two_class_prediction() -> None:
    """A profile of ``{"bad": 1 - p, "good": p}`` predictions gives the sketch its classes, so
    ``"good"`` is a positive label in the windows as in the profile's baselines."""
    from drifthouse.profiles.build import profile_from_events

    rows = [
        {
            "features": {"x": float(i)},
            "prediction": {"bad": 1 - i % 10 / 10, "good": i % 10 / 10},
            "label": "good" if i % 10 >= 5 else "bad",
        }
        for i in range(200)
    ]
    p = profile_from_events(
        rows, model="m", model_version="1", created_at="2026-01-01T00:00:00Z",
        source_digest="0" * 64,
    )  # fmt: skip
    assert p.baselines.labels["accuracy"] == 1.0
    sk = sketch_for_model(p)
    assert sk.binary_codes == {"bad": 0, "good": 1}
    from drifthouse.detectors.label_sketch import LabelBatch

    state = sk.update(sk.empty(), LabelBatch(["good", "bad"], np.array([0.7, 0.6]), [None, None]))
    assert {r.metric: r.value for r in sk.evaluate(state)}["accuracy"] == 0.5
