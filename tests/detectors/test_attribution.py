"""KL in every drift scope, and drift attribution (docs/statistics.md, "Drift attribution"):
bin and category contributions that add up to PSI and JS, exact under merges, and the share of
the prediction's drift each segment value carries."""

from __future__ import annotations

import random

import numpy as np
import pytest

from drifthouse.config import MetricsConfig
from drifthouse.detectors import stats
from drifthouse.detectors.attribution import bin_labels, segment_shares
from drifthouse.detectors.base import Context, Result
from drifthouse.detectors.categorical import OTHER_LABEL, CategoricalBlock
from drifthouse.detectors.columns import extract
from drifthouse.detectors.model_sketch import PREDICTION_FEATURE, ModelBatch, ModelSketch
from drifthouse.detectors.numeric import NumericBatch, NumericBlock
from drifthouse.detectors.window_attribution import attribute
from drifthouse.events import PredictionEvent
from tests.detectors.strategies import make_profile, reference_profile

WINDOW_MS = 3_600_000
ATTRIBUTION = {"psi_contribution", "js_contribution", "mass_shift"}


def _by(results: list[Result], metric: str) -> dict[tuple[str, str], float]:
    return {(r.feature, r.bin): r.value for r in results if r.metric == metric}


def _numeric_state(block: NumericBlock, x: np.ndarray):  # type: ignore[no-untyped-def]
    return block.update(block.empty(), NumericBatch(x, np.zeros(x.shape, np.uint8)))


def test_numeric_and_categorical_blocks_write_kl_next_to_psi() -> None:
    profile = reference_profile()
    rng = np.random.default_rng(3)
    num = NumericBlock.from_profile(profile)
    x = np.column_stack(
        [rng.normal(0.7, 1, 2_000), rng.lognormal(size=2_000), rng.integers(0, 5, 2_000)]
    )
    state = _numeric_state(num, x.astype(np.float64))
    out = num.evaluate(state)
    for j, f in enumerate(num.features):
        ref_p, cur_p = num.coarse_counts(num.reference, j), num.coarse_counts(state, j)
        kl = [r for r in out if r.feature == f.name and r.metric == "kl"]
        assert len(kl) == 1
        assert kl[0].value == stats.kl(ref_counts=ref_p, cur_counts=cur_p, eps=num.eps)
    cat = CategoricalBlock.from_profile(profile)
    codes = np.column_stack(
        [
            cat.codes_for(0, rng.choice(["a", "b", "zz"], 500)),
            cat.codes_for(1, rng.random(500) < 0.5),
        ]
    )
    cstate = cat.update(cat.empty(), codes)
    kls = {r.feature: r.value for r in cat.evaluate(cstate) if r.metric == "kl"}
    for j, name in enumerate(cat.names):
        k = int(cat.n_categories[j]) + 1
        assert kls[name] == stats.kl(
            ref_counts=cat.reference.counts[j, :k], cur_counts=cstate.counts[j, :k], eps=cat.eps
        )


def test_bin_labels_name_the_psi_bins() -> None:
    assert bin_labels([12.5, 420.0, 480.0]) == (
        "(-inf, 12.5)", "[12.5, 420.0)", "[420.0, 480.0)", "[480.0, +inf)",
    )  # fmt: skip
    assert bin_labels([]) == ("(-inf, +inf)",)
    # Edges that agree in their first digits (epoch milliseconds) still make distinct labels:
    # a shared label would be a shared key, and the store would keep one of the two rows.
    close = [1767225600000.0, 1767225600001.0, 1767225600001.5]
    assert len(set(bin_labels(close))) == len(close) + 1


def test_numeric_contributions_add_up_to_psi_and_js_with_every_bin() -> None:
    profile = reference_profile()
    rng = np.random.default_rng(4)
    num = NumericBlock.from_profile(profile)
    x = np.column_stack(
        [rng.normal(1.0, 1, 3_000), rng.lognormal(size=3_000), rng.integers(0, 5, 3_000)]
    )
    state = _numeric_state(num, x.astype(np.float64))
    out = num.contributions(state, top_k=1_000, min_psi=0.0)
    drift = {(r.feature, r.metric): r.value for r in num.evaluate(state)}
    for j, f in enumerate(num.features):
        psi_c = {b: v for (name, b), v in _by(out, "psi_contribution").items() if name == f.name}
        js_c = {b: v for (name, b), v in _by(out, "js_contribution").items() if name == f.name}
        assert set(psi_c) <= set(bin_labels(f.psi_edges))
        assert sum(psi_c.values()) == pytest.approx(drift[(f.name, "psi")], abs=1e-12)
        assert sum(js_c.values()) == pytest.approx(drift[(f.name, "js")] ** 2, abs=1e-12)
        shift = stats.mass_shift(
            ref_counts=num.coarse_counts(num.reference, j), cur_counts=num.coarse_counts(state, j)
        )
        labels = bin_labels(f.psi_edges)
        for (name, b), v in _by(out, "mass_shift").items():
            if name == f.name:
                assert v == shift[labels.index(b)]
    # The mean moved up by one sd: the top bin of x is the upper tail, which gained events.
    top = next(r for r in out if r.feature == "x" and r.metric == "psi_contribution")
    assert top.bin.endswith("+inf)")
    assert _by(out, "mass_shift")[("x", top.bin)] > 0


def test_top_k_keeps_the_largest_terms_and_min_psi_gates_the_feature() -> None:
    profile = reference_profile()
    rng = np.random.default_rng(5)
    num = NumericBlock.from_profile(profile)
    x = np.column_stack(
        [rng.normal(1.0, 1, 3_000), rng.lognormal(size=3_000), rng.integers(0, 5, 3_000)]
    )
    state = _numeric_state(num, x.astype(np.float64))
    every = _by(num.contributions(state, top_k=1_000, min_psi=0.0), "psi_contribution")
    top = num.contributions(state, top_k=2, min_psi=0.0)
    for f in num.names:
        mine = sorted((v for (name, _), v in every.items() if name == f), reverse=True)[:2]
        got = [r.value for r in top if r.feature == f and r.metric == "psi_contribution"]
        assert got == mine
    psi = {r.feature: r.value for r in num.evaluate(state) if r.metric == "psi"}
    gated = num.contributions(state, top_k=2, min_psi=0.1)
    assert {r.feature for r in gated} == {f for f, v in psi.items() if v >= 0.1}
    assert psi["x"] >= 0.1 > min(psi.values())
    assert {r.metric for r in gated} == ATTRIBUTION


def test_categorical_contributions_include_the_other_bucket() -> None:
    profile = make_profile(
        {"c": ["a"] * 500 + ["b"] * 300 + ["c"] * 190 + ["rare"] * 10},
        settings=MetricsConfig(top_categories=3),
    )
    cat = CategoricalBlock.from_profile(profile)
    values = ["a"] * 300 + ["b"] * 300 + ["new"] * 400
    state = cat.update(cat.empty(), cat.codes_for(0, values)[:, None])
    out = cat.contributions(state, top_k=10, min_psi=0.0)
    psi_c = _by(out, "psi_contribution")
    assert set(psi_c) <= {("c", c) for c in ["a", "b", "c", OTHER_LABEL]}
    drift = {r.metric: r.value for r in cat.evaluate(state)}
    assert sum(psi_c.values()) == pytest.approx(drift["psi"], abs=1e-12)
    assert max(psi_c, key=lambda k: psi_c[k]) == ("c", OTHER_LABEL)
    assert _by(out, "mass_shift")[("c", OTHER_LABEL)] == pytest.approx(0.4 - 0.01)


def _event(rng: random.Random, i: int, shifted: bool) -> PredictionEvent:
    country = rng.choice(["BR", "DE", "FR"])
    score = rng.random()
    if shifted and country == "BR":
        score = 0.8 + 0.2 * score  # only Brazil's scores move
    return PredictionEvent(
        model="m",
        ts_ms=i,
        features={"x": rng.gauss(0, 1), "c": rng.choice(["a", "b"])},
        prediction=round(score, 4),
        latency_ms=10.0,
        status=200,
        segment={"country": country},
    )


_SETTINGS: dict[int, MetricsConfig] = {}


def _attribute(sketch: ModelSketch, state, segments):  # type: ignore[no-untyped-def]
    return attribute(sketch, state, segments, _SETTINGS[id(sketch)])


def _model_sketch(**settings: object) -> ModelSketch:
    rng = np.random.default_rng(1)
    n = 3_000
    profile = make_profile(
        {"x": rng.normal(0, 1, n).tolist(), "c": [["a", "b"][i % 2] for i in range(n)]},
        prediction=[float(v) for v in rng.uniform(0, 1, n).round(4)],
        latency_ms=[10.0] * n,
        status=[200] * n,
    )
    config = MetricsConfig(**{"attribution_top_k": 3, **settings})  # type: ignore[arg-type]
    sketch = ModelSketch("m", profile, config)
    _SETTINGS[id(sketch)] = config
    return sketch


def test_the_prediction_gets_kl_model_wide_and_per_segment_value() -> None:
    sketch = _model_sketch()
    rng = random.Random(2)
    events = [_event(rng, i, shifted=True) for i in range(3_000)]
    state = sketch.update(sketch.empty(), ModelBatch(extract(events, sketch.layout)))
    model = {
        r.metric: r
        for r in sketch.evaluate(state, Context(window_ms=WINDOW_MS))
        if r.feature == PREDICTION_FEATURE
    }
    assert "kl" in model
    for _, seg in sketch.capped_segments(state):
        rows = sketch.evaluate_segment(seg, Context(window_ms=WINDOW_MS))
        assert [r.metric for r in rows if r.feature == PREDICTION_FEATURE].count("kl") == 1


def test_segment_attribution_names_the_segment_whose_predictions_moved() -> None:
    sketch = _model_sketch()
    rng = random.Random(3)
    events = [_event(rng, i, shifted=True) for i in range(6_000)]
    state = sketch.update(sketch.empty(), ModelBatch(extract(events, sketch.layout)))
    segments = list(sketch.capped_segments(state))
    out = _attribute(sketch, state, segments)
    shares = {(r.bin or r.feature, s): r.value for s, r in out if r.metric == "psi_segment_share"}
    by_segment = {s: v for (_, s), v in shares.items()}
    assert max(by_segment, key=lambda s: by_segment[s]) == "country=BR"
    assert by_segment["country=BR"] > 0.8
    assert sum(by_segment.values()) == pytest.approx(1.0, abs=1e-12)
    # The prediction's own bins: the two top ones lie above 0.8, where Brazil's scores went.
    bins = [
        r
        for s, r in out
        if s == "" and r.feature == PREDICTION_FEATURE and r.metric == "psi_contribution"
    ]
    assert len(bins) == 3
    for r in bins[:2]:
        assert float(r.bin[1:].split(",")[0]) >= 0.79
    shifts = {
        r.bin: r.value
        for s, r in out
        if r.feature == PREDICTION_FEATURE and r.metric == "mass_shift"
    }
    assert all(shifts[r.bin] > 0 for r in bins[:2])


def test_segment_shares_weigh_each_value_psi_by_its_events() -> None:
    items = [
        ("country=BR", 300, 0.9),
        ("country=DE", 600, 0.05),
        ("country=FR", 100, 0.0),
        ("tier=a", 10, 1.0),
    ]
    got = dict(segment_shares(items, top_k=10))
    total = 300 * 0.9 + 600 * 0.05
    assert got["country=BR"] == pytest.approx(300 * 0.9 / total, abs=1e-15)
    assert got["country=DE"] == pytest.approx(600 * 0.05 / total, abs=1e-15)
    assert "country=FR" not in got  # no drift, no share
    assert got["tier=a"] == 1.0
    assert list(dict(segment_shares(items, top_k=1))) == ["country=BR", "tier=a"]


def test_attribution_of_merged_panes_equals_one_pass() -> None:
    sketch = _model_sketch(attribution_min_psi=0.0)
    rng = random.Random(4)
    events = [_event(rng, i, shifted=True) for i in range(4_000)]
    one = sketch.update(sketch.empty(), ModelBatch(extract(events, sketch.layout)))
    panes = [
        sketch.update(sketch.empty(), ModelBatch(extract(events[lo : lo + 700], sketch.layout)))
        for lo in range(0, 4_000, 700)
    ]
    merged = panes[0]
    for p in panes[1:]:
        merged = sketch.merge(merged, p)

    def rows(state):  # type: ignore[no-untyped-def]
        return [(s, r) for s, r in _attribute(sketch, state, list(sketch.capped_segments(state)))]

    assert rows(one) == rows(merged)
    assert any(r.metric == "psi_segment_share" for _, r in rows(one))


def test_attribution_is_off_with_top_k_zero() -> None:
    sketch = _model_sketch(attribution_top_k=0)
    rng = random.Random(5)
    events = [_event(rng, i, shifted=True) for i in range(2_000)]
    state = sketch.update(sketch.empty(), ModelBatch(extract(events, sketch.layout)))
    assert _attribute(sketch, state, list(sketch.capped_segments(state))) == []
