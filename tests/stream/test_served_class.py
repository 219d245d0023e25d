"""The class a model served, sent beside its probabilities (``predicted_class``), is the
prediction that is profiled, windowed and scored against labels: not the arg-max with ties
broken by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from river import datasets

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.detectors.typed_decode import TypedDecoders
from drifthouse.errors import ProfileError
from drifthouse.profiles.build import build_profile_from_file
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CONFIG = Config.model_validate({"windows": [{"size": "1h"}], "metrics": {"allowed_lateness": "0s"}})
# River's ImageSegments: 2,310 real rows of 7 classes. A model that is unsure between the
# true class and "brickface" (first by name) serves the true class on a tie.
SEGMENTS = [
    (x["region-centroid-col"], x["short-line-density-5"], y) for x, y in datasets.ImageSegments()
]
CLASSES = sorted({y for *_, y in SEGMENTS})


def _event(i: int, col: float, density: float, served: str) -> dict[str, object]:
    probabilities = dict.fromkeys(CLASSES, 0.0)
    probabilities["brickface"] = 0.5
    probabilities[served] = 0.5 if served != "brickface" else 1.0
    return {
        "model": "segments",
        "ts": T0 + i,
        "event_id": f"e{i}",
        "features": {"col": col, "density": density},
        "prediction": probabilities,
        "predicted_class": served,
    }


def _events() -> list[dict[str, object]]:
    return [_event(i, col, d, y) for i, (col, d, y) in enumerate(SEGMENTS)]


@pytest.mark.parametrize(
    "fast", [pytest.param(True, id="fast-decode"), pytest.param(False, id="general-decode")]
)
def test_the_served_class_is_profiled_windowed_and_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    events = _events()
    path = tmp_path / "ref.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    profile = build_profile_from_file(
        path, model="segments", model_version="1", created_at="2026-01-01T00:00:00Z"
    )
    assert profile.prediction is not None
    served = dict(
        zip(profile.prediction.categories, profile.prediction.category_counts, strict=True)
    )
    assert served == {c: sum(1 for *_, y in SEGMENTS if y == c) for c in CLASSES}
    if not fast:
        monkeypatch.setattr(TypedDecoders, "decoder", lambda self, model: None)
    sink, dead = MemorySink(), MemoryDeadLetters()
    pipe = Pipeline(
        config=CONFIG, profiles={"segments": profile}, sink=sink, dead_letters=dead,
        run_id="t", computed_at=lambda: 0,
    )  # fmt: skip
    pipe.expect_partitions({0})
    pipe.process([Message(json.dumps(e).encode(), 0, i) for i, e in enumerate(events)])
    labels = [
        {
            "event_id": e["event_id"],
            "model": "segments",
            "ts": T0 + 10 + i,
            "label": e["predicted_class"],
        }
        for i, e in enumerate(events)
    ]
    pipe.add_labels([Message(json.dumps(x).encode(), 0, i, "labels") for i, x in enumerate(labels)])
    pipe.process([Message(json.dumps(_event(10**7, 1.0, 0.0, "sky")).encode(), 0, len(events))])
    pipe.finish()
    sink.flush()
    got = {(r.feature, r.metric): r.value for r in sink.rows("metrics") if r.window_start == T0}
    assert got["__prediction__", "psi"] == pytest.approx(0.0, abs=1e-12)
    assert got["__prediction__", "chi2"] == pytest.approx(0.0, abs=1e-9)
    assert got["", "accuracy"] == 1.0


def test_a_reference_naming_a_class_it_does_not_have_is_refused(tmp_path: Path) -> None:
    events = _events()[:50]
    events[7]["predicted_class"] = "nope"
    path = tmp_path / "ref.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    with pytest.raises(
        ProfileError, match=r"ref.jsonl:8: .*got string \"nope\" - at `\$.predicted_class`"
    ):
        build_profile_from_file(
            path, model="segments", model_version="1", created_at="2026-01-01T00:00:00Z"
        )


def test_class_predictions_and_labels_meet_as_categories() -> None:
    """A class served as ``"1.0"`` and labelled ``1`` is one class, as in profiles."""
    from drifthouse.events import LabelEvent, PredictionEvent
    from drifthouse.stream.labels import LabelStage

    stage = LabelStage.from_config(Config(), profiles={})
    served = ["1.0", "2", "True", "0", "7"]
    truth = [1, 2.0, True, "0.0", "07"]
    stage.add_predictions(
        [
            PredictionEvent(model="m", ts_ms=1_000 + i, features={}, event_id=f"a{i}", prediction=p)
            for i, p in enumerate(served)
        ]
    )
    stage.add_labels(
        [LabelEvent(event_id=f"a{i}", model="m", ts_ms=9_000, label=y) for i, y in enumerate(truth)]
    )
    rows = {r.metric: r.value for r in stage.flush(None, run_id="live", computed_at=0)}
    assert rows["accuracy"] == 4 / 5  # "07" is a code, not the number 7


def test_the_reference_and_the_windows_score_class_labels_alike() -> None:
    """The profile's baseline accuracy compares classes as the windows do."""
    from drifthouse.detectors.labels import reference_metrics

    served = ["1.0", "2", "True", "0", "7", "Cat"]
    truth = [1, 2.0, True, "0.0", "07", "cat"]
    _, baseline = reference_metrics(y_true=truth, y_pred=served, task="classification")
    assert baseline["accuracy"] == 4 / 6
