"""ModelSketch: extraction from events, the protocol properties, and the contract's metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.detectors.model import ModelBatch, ModelSketch, ModelState, prediction_score
from drifthouse.errors import SketchError
from tests.detectors.strategies import make_profile

RNG = np.random.default_rng(0)
N = 3_000
PROFILE = make_profile(
    {
        "amount": RNG.lognormal(size=N),
        "age": RNG.integers(18, 90, N).astype(float),
        "country": list(RNG.choice(["de", "fr", "us"], N)),
        "vip": list(RNG.random(N) < 0.2),
    },
    prediction=RNG.random(N),
    latency_ms=RNG.lognormal(3, 0.4, N),
    status=np.where(RNG.random(N) < 0.02, 500, 200),
)
SK = ModelSketch(PROFILE)

feature_values = st.fixed_dictionaries(
    {},
    optional={
        "amount": st.one_of(st.none(), st.floats(0, 100), st.text(max_size=2), st.just(math.nan)),
        "age": st.one_of(st.none(), st.integers(0, 120), st.booleans()),
        "country": st.one_of(st.none(), st.sampled_from(["de", "fr", "us", "xx"])),
        "vip": st.one_of(st.none(), st.booleans()),
    },
)
events = st.lists(
    st.tuples(
        feature_values,
        st.one_of(st.none(), st.floats(0, 1), st.just({"0": 0.4, "1": 0.6})),
        st.one_of(st.none(), st.floats(0, 1e4)),
        st.sampled_from([200, 200, 404, 503]),
    ),
    max_size=40,
)


Event = tuple[dict[str, object], object, float | None, int]


def batch_of(evs: list[Event]) -> ModelBatch:
    return SK.extract(
        [e[0] for e in evs],
        predictions=[e[1] for e in evs],
        latencies_ms=[e[2] for e in evs],
        statuses=[e[3] for e in evs],
    )


@settings(max_examples=40, deadline=None)
@given(events, st.data())
def test_batch_cuts_and_merges_agree(evs: list[Event], data: st.DataObject) -> None:
    whole = SK.update(SK.empty(), batch_of(evs))
    cut = data.draw(st.integers(0, len(evs)))
    state = SK.update(SK.update(SK.empty(), batch_of(evs[:cut])), batch_of(evs[cut:]))
    assert state.equals(whole)
    merged = SK.merge(
        SK.update(SK.empty(), batch_of(evs[:cut])), SK.update(SK.empty(), batch_of(evs[cut:]))
    )
    assert merged.numeric.counts.tolist() == whole.numeric.counts.tolist()
    assert merged.categorical.equals(whole.categorical)
    assert merged.latency.equals(whole.latency)
    assert int(merged.events[0]) == len(evs)
    assert ModelState.from_bytes(whole.to_bytes(), SK).equals(whole)


def test_extract_and_evaluate() -> None:
    evs = [
        ({"amount": 3.5, "age": 40, "country": "de", "vip": True}, 0.9, 20.0, 200),
        (
            {"amount": "3.5", "age": None, "country": "zz", "vip": False},
            {"0": 0.2, "1": 0.8},
            None,
            503,
        ),
        ({"age": True}, None, 35.0, 404),
    ]
    state = SK.update(SK.empty(), batch_of(evs))
    res = {(r.feature, r.metric): r.value for r in SK.evaluate(state)}
    assert res[("", "events")] == 3
    assert res[("", "error_rate_5xx")] == pytest.approx(1 / 3)
    assert res[("", "error_rate_4xx")] == pytest.approx(1 / 3)
    assert ("", "latency_p95") in res
    assert res[("amount", "type_error")] == 1
    assert res[("amount", "missing")] == 1
    assert res[("age", "type_error")] == 1  # a bool in a numeric feature
    assert res[("country", "new_category")] == 1
    assert res[("country", "missing")] == 1
    pred = {m for (f, m) in res if f == "__prediction__"}
    assert pred == {"psi", "ks", "ks_pvalue", "js"}
    assert all(math.isfinite(v) for v in res.values())


def test_empty_window_evaluates_without_drift_or_nan() -> None:
    res = SK.evaluate(SK.empty())
    assert all(math.isfinite(r.value) for r in res)
    assert not {r.metric for r in res} & {
        "psi",
        "ks",
        "js",
        "chi2",
        "latency_p50",
        "error_rate_5xx",
    }


def test_sketch_parts_cover_every_feature_and_latency() -> None:
    parts = SK.sketch_parts(SK.empty())
    assert {(p.feature, p.kind) for p in parts} == {
        ("amount", "hist"),
        ("age", "hist"),
        ("country", "categories"),
        ("vip", "categories"),
        ("__prediction__", "hist"),
        ("", "quantiles"),
    }


def test_state_of_another_profile_is_refused() -> None:
    other = ModelSketch(make_profile({"amount": np.arange(10.0)}))
    with pytest.raises(SketchError):
        ModelState.from_bytes(other.empty().to_bytes(), SK)


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        pytest.param({"0": 0.3, "1": 0.7}, 0.7, id="binary-probabilities"),
        pytest.param({"no": 0.9, "yes": 0.1}, 0.1, id="yes-is-positive"),
        pytest.param({"a": 0.2, "b": 0.5, "c": 0.3}, "b", id="multiclass-argmax"),
        pytest.param(0.25, 0.25, id="score"),
        pytest.param({}, None, id="empty"),
    ],
)
def test_prediction_score(prediction: object, expected: object) -> None:
    assert prediction_score(prediction) == expected
