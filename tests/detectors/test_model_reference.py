"""``ModelSketch.evaluate`` compares every part of a window with ``context.reference``, a
``ModelState`` (a trailing baseline, docs/statistics.md "Trailing baselines")."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drifthouse.config import MetricsConfig
from drifthouse.detectors.base import Context, Result
from drifthouse.detectors.columns import extract
from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch, ModelState
from drifthouse.errors import SketchError
from drifthouse.events import decoder_for
from drifthouse.profiles.build import profile_from_events

DRIFT = {"psi", "kl", "js", "ks", "chi2", "wasserstein"}


def _events(shift: float, n: int = 300, seed: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    return [
        {"model": "m", "ts": 1_767_225_600_000 + i, "event_id": f"e{i}",
         "prediction": float(np.clip(rng.normal(0.5 + shift / 10, 0.1), 0, 1)),
         "features": {"x": float(rng.normal(shift, 1)), "c": "ab"[int(rng.random() < 0.3 + shift / 10)]}}
        for i in range(n)
    ]  # fmt: skip


def _state(sketch: ModelSketch, events: list[dict[str, object]]) -> ModelState:
    ok, _ = decoder_for("prediction").decode_batch(
        [json.dumps(e).encode() for e in events], now_ms=None
    )
    cols = extract([e for _, e in ok], sketch.layout)
    return sketch.update(sketch.empty(), ModelBatch(cols))


@pytest.fixture
def sketch() -> ModelSketch:
    profile = profile_from_events(
        _events(0.0), model="m", model_version="1", created_at="2026-01-01T00:00:00.000Z",
        source_digest="",
    )  # fmt: skip
    return ModelSketch("m", profile, MetricsConfig())


def test_a_window_compared_with_itself_has_no_drift_in_any_part(sketch: ModelSketch) -> None:
    window = _state(sketch, _events(2.0, seed=1))
    own = sketch.evaluate(window, Context(window_ms=60_000))
    same = sketch.evaluate(window, Context(reference=window, window_ms=60_000))
    drifted = {(r.feature, r.metric) for r in own if r.metric in {"psi", "chi2"} and r.value > 0.1}
    # Against the profile every part drifted: the feature, the category and the prediction.
    assert {("x", "psi"), ("c", "chi2"), ("__prediction__", "psi")} <= drifted
    for r in same:
        if r.metric in DRIFT:
            assert r.value == pytest.approx(0.0, abs=1e-12), r
    # Quality and serving rows do not depend on what the window is compared with.
    skip = DRIFT | {"ks_pvalue", "chi2_pvalue", "importance_shift"}

    def quality(rows: list[Result]) -> set[tuple[str, str, float]]:
        return {(r.feature, r.metric, r.value) for r in rows if r.metric not in skip}

    assert quality(own) == quality(same)


def test_a_reference_of_another_kind_is_refused(sketch: ModelSketch) -> None:
    window = _state(sketch, _events(0.0))
    with pytest.raises(SketchError, match="ModelSketch compares with a ModelState"):
        sketch.evaluate(window, Context(reference=window.numeric, window_ms=60_000))
