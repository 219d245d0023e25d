"""Two versions of one model compared in one window: prediction drift between them, error-rate
differences and latency ratios, checked against naive computations on the raw events."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from drifthouse.config import MetricsConfig
from drifthouse.detectors.columns import extract
from drifthouse.detectors.compare import compare_states
from drifthouse.detectors.model_sketch import PREDICTION_FEATURE, ModelBatch, ModelSketch
from drifthouse.detectors.reference import Profile
from drifthouse.events import PredictionEvent
from drifthouse.profiles.columns import build_profile


def _profile(kind: str) -> Profile:
    rng = np.random.default_rng(1)
    n = 2000
    prediction: list[object] = (
        rng.uniform(0, 1, n).tolist()
        if kind == "score"
        else [["cat", "dog", "eel"][i % 3] for i in range(n)]
    )
    return build_profile(
        model="m",
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
        source_digest="test",
        settings=MetricsConfig(),
        features={"x": rng.normal(0, 1, n).tolist()},
        prediction=prediction,
        latency_ms=rng.uniform(5, 50, n).round(2).tolist(),
        status=[200] * n,
    )


def _events(
    n: int, *, kind: str, seed: int, shift: float, error: float, slow: float
) -> list[PredictionEvent]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if kind == "score":
            prediction: object = min(max(rng.random() + shift, 0.0), 1.0)
        else:
            prediction = rng.choices(["cat", "dog", "eel"], [1.0, 1.0 + shift * 10, 1.0])[0]
        out.append(
            PredictionEvent(
                model="m",
                ts_ms=i,
                features={"x": rng.gauss(0, 1)},
                prediction=prediction,  # type: ignore[arg-type]
                latency_ms=rng.uniform(5, 50) * slow,
                status=503 if rng.random() < error else (404 if rng.random() < 0.02 else 200),
            )
        )
    return out


def _state(sketch: ModelSketch, events: list[PredictionEvent]):  # type: ignore[no-untyped-def]
    state = sketch.empty()
    sketch.update(state, ModelBatch(extract(events, sketch.layout)))
    return state


def _naive_psi(edges: list[float], ref: list[float], cur: list[float], eps: float) -> float:
    b = np.asarray(edges)
    p = np.bincount(np.searchsorted(b, ref, side="right"), minlength=b.size + 1) / len(ref)
    q = np.bincount(np.searchsorted(b, cur, side="right"), minlength=b.size + 1) / len(cur)
    p, q = np.maximum(p, eps), np.maximum(q, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def _share(events: list[PredictionEvent], lo: int) -> float:
    return sum(lo <= (e.status or 200) < lo + 100 for e in events) / len(events)


def test_a_shifted_canary_against_the_main_version_matches_naive_figures() -> None:
    profile = _profile("score")
    sketch = ModelSketch("m", profile, MetricsConfig())
    main = _events(9000, kind="score", seed=1, shift=0.0, error=0.01, slow=1.0)
    canary = _events(1000, kind="score", seed=2, shift=0.2, error=0.05, slow=1.5)
    got = {
        (r.feature, r.metric): r
        for r in compare_states(sketch, _state(sketch, canary), _state(sketch, main))
    }
    assert len(got) == len(compare_states(sketch, _state(sketch, canary), _state(sketch, main)))
    pred = profile.prediction
    assert pred is not None
    psi = got[(PREDICTION_FEATURE, "vs_psi")]
    expected = _naive_psi(
        pred.psi_edges,
        [float(e.prediction) for e in main],  # type: ignore[arg-type]
        [float(e.prediction) for e in canary],  # type: ignore[arg-type]
        profile.settings.eps,
    )
    assert psi.value == pytest.approx(expected, rel=1e-12)
    assert psi.value > 0.2
    assert (psi.n_ref, psi.n_cur) == (9000, 1000)
    assert 0.0 < got[(PREDICTION_FEATURE, "vs_js")].value <= 1.0
    assert got[(PREDICTION_FEATURE, "vs_ks")].value > 0.1
    assert got[(PREDICTION_FEATURE, "vs_ks_pvalue")].value < 1e-6
    mean_diff = np.mean([e.prediction for e in canary]) - np.mean([e.prediction for e in main])  # type: ignore[arg-type]
    assert got[(PREDICTION_FEATURE, "vs_mean_diff")].value == pytest.approx(mean_diff, rel=1e-9)
    for metric, lo in (("vs_error_rate_5xx_diff", 500), ("vs_error_rate_4xx_diff", 400)):
        assert got[("", metric)].value == pytest.approx(
            _share(canary, lo) - _share(main, lo), abs=1e-15
        )
    for q in (50, 95, 99):
        naive_c = float(np.quantile([e.latency_ms for e in canary], q / 100))
        naive_m = float(np.quantile([e.latency_ms for e in main], q / 100))
        assert got[("", f"vs_latency_p{q}_ratio")].value == pytest.approx(
            naive_c / naive_m, rel=0.03
        )
        assert got[("", f"vs_latency_p{q}_diff")].value == pytest.approx(
            naive_c - naive_m, rel=0.05
        )


@pytest.mark.parametrize(
    "kind", [pytest.param("score", id="score"), pytest.param("class", id="classes")]
)
def test_a_version_against_itself_differs_in_nothing(kind: str) -> None:
    sketch = ModelSketch("m", _profile(kind), MetricsConfig())
    state = _state(sketch, _events(3000, kind=kind, seed=3, shift=0.0, error=0.02, slow=1.0))
    got = {(r.feature, r.metric): r.value for r in compare_states(sketch, state, state)}
    for (_, metric), value in got.items():
        if metric.endswith("_ratio") or metric.endswith("pvalue"):
            assert value == 1.0, metric
        else:
            assert value == 0.0, metric
    expected_drift = (
        {"vs_psi", "vs_js", "vs_ks", "vs_ks_pvalue", "vs_mean_diff"}
        if kind == "score"
        else {"vs_psi", "vs_js", "vs_chi2", "vs_chi2_pvalue"}
    )
    assert {m for f, m in got if f == PREDICTION_FEATURE} >= expected_drift


def test_a_class_canary_that_serves_another_mix_drifts() -> None:
    sketch = ModelSketch("m", _profile("class"), MetricsConfig())
    main = _state(sketch, _events(5000, kind="class", seed=4, shift=0.0, error=0.0, slow=1.0))
    canary = _state(sketch, _events(500, kind="class", seed=5, shift=0.3, error=0.0, slow=1.0))
    got = {(r.feature, r.metric): r.value for r in compare_states(sketch, canary, main)}
    assert got[(PREDICTION_FEATURE, "vs_psi")] > 0.2
    assert got[(PREDICTION_FEATURE, "vs_chi2_pvalue")] < 1e-6
    assert got[("", "vs_error_rate_5xx_diff")] == 0.0


def test_an_empty_side_writes_no_comparison() -> None:
    sketch = ModelSketch("m", _profile("score"), MetricsConfig())
    state = _state(sketch, _events(100, kind="score", seed=6, shift=0.0, error=0.0, slow=1.0))
    assert compare_states(sketch, state, sketch.empty()) == []
    assert compare_states(sketch, sketch.empty(), state) == []
    assert all(math.isfinite(r.value) for r in compare_states(sketch, state, state))


def test_no_profile_still_compares_serving() -> None:
    sketch = ModelSketch("m", None, MetricsConfig())
    a = _state(sketch, _events(500, kind="score", seed=7, shift=0.0, error=0.0, slow=1.0))
    b = _state(sketch, _events(500, kind="score", seed=8, shift=0.0, error=0.1, slow=2.0))
    got = {(r.feature, r.metric): r.value for r in compare_states(sketch, b, a)}
    assert got[("", "vs_error_rate_5xx_diff")] > 0.05
    assert got[("", "vs_latency_p50_ratio")] == pytest.approx(2.0, rel=0.05)
    assert not any(f == PREDICTION_FEATURE for f, _ in got)
