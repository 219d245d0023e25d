"""Protocol properties of every sketch: batch cuts, merge, identity, serialisation, evaluate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from drifthouse.detectors.base import State
from drifthouse.detectors.categorical import CategoricalBlock, CategoricalState
from drifthouse.detectors.numeric import NumericBatch, NumericBlock, NumericState
from drifthouse.detectors.quantiles import QuantileSketch, QuantileState
from drifthouse.detectors.status import StatusCounter, StatusState
from drifthouse.errors import SketchError
from tests.detectors.strategies import cuts, numeric_batch, reference_profile, split

PROFILE = reference_profile()
NUM = NumericBlock.from_profile(PROFILE)
CAT = CategoricalBlock.from_profile(PROFILE)
QS = QuantileSketch()
SC = StatusCounter()

code_batch = st.integers(0, 60).flatmap(
    lambda n: hnp.arrays(np.int32, (n, 2), elements=st.integers(-1, 5)).map(
        lambda c: np.minimum(c, (CAT.n_categories + 1).astype(np.int32))
    )
)
latency_batch = hnp.arrays(
    np.float64,
    st.integers(0, 80),
    elements=st.one_of(
        st.floats(0, 1e5, allow_nan=False), st.sampled_from([0.0, -1.0, np.nan, 1e9])
    ),
)


def num_update(s: NumericState, batch: tuple[np.ndarray, ...]) -> NumericState:
    return NUM.update(s, NumericBatch(batch[0], batch[1]))


# ---- update in any micro-batch cut equals one update, bit for bit -------------------------


@settings(max_examples=60, deadline=None)
@given(st.data(), numeric_batch(3, max_rows=80))
def test_numeric_batch_cut_is_bitwise_invisible(
    data: st.DataObject, batch: tuple[np.ndarray, np.ndarray]
) -> None:
    whole = NUM.update(NUM.empty(), NumericBatch(*batch))
    state = NUM.empty()
    for part in split(batch, data.draw(cuts(batch[0].shape[0]))):
        state = num_update(state, part)
    assert state.equals(whole)


@settings(max_examples=40, deadline=None)
@given(st.data(), code_batch)
def test_categorical_batch_cut_is_invisible(data: st.DataObject, codes: np.ndarray) -> None:
    whole = CAT.update(CAT.empty(), codes)
    state = CAT.empty()
    for (part,) in split((codes,), data.draw(cuts(codes.shape[0]))):
        state = CAT.update(state, part)
    assert state.equals(whole)


@settings(max_examples=40, deadline=None)
@given(st.data(), latency_batch)
def test_quantile_batch_cut_is_invisible(data: st.DataObject, values: np.ndarray) -> None:
    whole = QS.update(QS.empty(), values)
    state = QS.empty()
    for (part,) in split((values,), data.draw(cuts(values.shape[0]))):
        state = QS.update(state, part)
    assert state.equals(whole)


# ---- merge equals concatenation; order does not matter; empty() is the identity -----------


@settings(max_examples=60, deadline=None)
@given(numeric_batch(3), numeric_batch(3), numeric_batch(3))
def test_numeric_merge_equals_concatenation(
    a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], c: tuple[np.ndarray, ...]
) -> None:
    # Keep magnitudes sane so relative comparisons of means are meaningful.
    a, b, c = (
        tuple(np.clip(x, -1e6, 1e6) if x.dtype == np.float64 else x for x in t) for t in (a, b, c)
    )
    sa, sb, sc = (num_update(NUM.empty(), t) for t in (a, b, c))
    concat = num_update(
        NUM.empty(), tuple(np.concatenate([x, y, z]) for x, y, z in zip(a, b, c, strict=True))
    )
    for merged in (
        NUM.merge(NUM.merge(sa, sb), sc),
        NUM.merge(sa, NUM.merge(sb, sc)),
        NUM.merge(NUM.merge(sc, sa), sb),
    ):
        for key in (
            "counts",
            "count",
            "missing",
            "non_finite",
            "type_error",
            "out_of_range",
            "vmin",
            "vmax",
        ):
            np.testing.assert_array_equal(getattr(merged, key), getattr(concat, key), err_msg=key)
        np.testing.assert_allclose(merged.mean, concat.mean, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(NUM.std(merged), NUM.std(concat), rtol=1e-12, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(code_batch, code_batch)
def test_categorical_merge_equals_concatenation(a: np.ndarray, b: np.ndarray) -> None:
    sa, sb = CAT.update(CAT.empty(), a), CAT.update(CAT.empty(), b)
    concat = CAT.update(CAT.empty(), np.concatenate([a, b]))
    assert CAT.merge(sa, sb).equals(concat)
    assert CAT.merge(sb, sa).equals(concat)


@settings(max_examples=40, deadline=None)
@given(latency_batch, latency_batch)
def test_quantile_merge_equals_concatenation(a: np.ndarray, b: np.ndarray) -> None:
    sa, sb = QS.update(QS.empty(), a), QS.update(QS.empty(), b)
    concat = QS.update(QS.empty(), np.concatenate([a, b]))
    assert QS.merge(sa, sb).equals(concat)
    assert QS.merge(sb, sa).equals(concat)


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(np.int64, st.integers(0, 50), elements=st.integers(0, 700)),
    hnp.arrays(np.int64, st.integers(0, 50), elements=st.integers(0, 700)),
)
def test_status_merge_equals_concatenation(a: np.ndarray, b: np.ndarray) -> None:
    concat = SC.update(SC.empty(), np.concatenate([a, b]))
    assert SC.merge(SC.update(SC.empty(), a), SC.update(SC.empty(), b)).equals(concat)


@settings(max_examples=30, deadline=None)
@given(numeric_batch(3), code_batch, latency_batch)
def test_empty_is_the_identity_bit_for_bit(
    num: tuple[np.ndarray, ...], codes: np.ndarray, lat: np.ndarray
) -> None:
    s = num_update(NUM.empty(), num)
    assert NUM.merge(NUM.empty(), s).equals(s)
    assert NUM.merge(s, NUM.empty()).equals(s)
    c = CAT.update(CAT.empty(), codes)
    assert CAT.merge(CAT.empty(), c).equals(c)
    q = QS.update(QS.empty(), lat)
    assert QS.merge(q, QS.empty()).equals(q)


# ---- serialisation ------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(numeric_batch(3), code_batch, latency_batch)
def test_states_round_trip_through_bytes_exactly(
    num: tuple[np.ndarray, ...], codes: np.ndarray, lat: np.ndarray
) -> None:
    states: list[tuple[type[State], State]] = [
        (NumericState, num_update(NUM.empty(), num)),
        (CategoricalState, CAT.update(CAT.empty(), codes)),
        (QuantileState, QS.update(QS.empty(), lat)),
        (StatusState, SC.update(SC.empty(), np.asarray([200, 404, 500, 0]))),
    ]
    for cls, s in states:
        back = cls.from_bytes(s.to_bytes())
        assert back.equals(s)
        assert back.layout == s.layout


def test_from_bytes_rejects_other_kinds_and_garbage() -> None:
    with pytest.raises(SketchError, match="expected a serialised NumericState"):
        NumericState.from_bytes(CAT.empty().to_bytes())
    with pytest.raises(SketchError, match="not a serialised"):
        NumericState.from_bytes(b"\x00garbage")


def test_states_of_other_profiles_do_not_mix() -> None:
    other = NumericBlock.from_profile(reference_profile(seed=1))
    with pytest.raises(SketchError, match="layout"):
        NUM.merge(NUM.empty(), other.empty())
    with pytest.raises(SketchError, match="layout"):
        NUM.update(other.empty(), NumericBatch(np.zeros((1, 3))))


def test_update_returns_the_state_it_was_given() -> None:
    s = NUM.empty()
    assert NUM.update(s, NumericBatch(np.ones((2, 3)))) is s


# ---- evaluate ------------------------------------------------------------------------------

NUMERIC_DRIFT = {"psi", "ks", "ks_pvalue", "js", "wasserstein"}
NUMERIC_QUALITY = {"count", "missing", "missing_rate", "non_finite", "type_error", "out_of_range"}


@pytest.mark.parametrize(
    ("values", "status", "expect_drift"),
    [
        pytest.param(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), False, id="empty-window"),
        pytest.param(np.full((4, 3), np.nan), np.zeros((4, 3), np.uint8), False, id="all-nan"),
        pytest.param(np.zeros((4, 3)), np.ones((4, 3), np.uint8), False, id="all-missing"),
        pytest.param(np.full((1, 3), 1e300), np.zeros((1, 3), np.uint8), True, id="one-huge-value"),
        pytest.param(np.zeros((3, 3)), np.zeros((3, 3), np.uint8), True, id="constant"),
    ],
)
def test_numeric_evaluate_is_finite_and_complete(
    values: np.ndarray, status: np.ndarray, expect_drift: bool
) -> None:
    state = NUM.update(NUM.empty(), NumericBatch(values, status))
    results = NUM.evaluate(state)
    assert all(math.isfinite(r.value) for r in results)
    assert all(r.p_value is None or 0.0 <= r.p_value <= 1.0 for r in results)
    for name in NUM.names:
        metrics = {r.metric for r in results if r.feature == name}
        assert metrics >= NUMERIC_QUALITY
        assert (metrics >= NUMERIC_DRIFT) is expect_drift
        assert not (NUMERIC_DRIFT & metrics) or expect_drift


def test_numeric_evaluate_against_itself_shows_no_drift() -> None:
    res = {(r.feature, r.metric): r.value for r in NUM.evaluate(NUM.reference)}
    for name in NUM.names:
        assert res[(name, "psi")] == 0.0
        assert res[(name, "ks")] == 0.0
        assert res[(name, "js")] == 0.0
        assert res[(name, "wasserstein")] == 0.0
        assert res[(name, "ks_pvalue")] == 1.0


def test_numeric_quality_counts() -> None:
    values = np.asarray([[0.0, 1.0, 2.0], [np.inf, 1.0, 2.0], [100.0, 1.0, 2.0], [0.0, 0.0, 0.0]])
    status = np.asarray([[0, 0, 0], [0, 1, 0], [0, 0, 2], [1, 1, 1]], np.uint8)
    block = NumericBlock.from_profile(PROFILE, bounds={"z": (0.0, 1.0)})
    res = {
        (r.feature, r.metric): r.value
        for r in block.evaluate(block.update(block.empty(), NumericBatch(values, status)))
    }
    assert res[("x", "count")] == 2
    assert res[("x", "non_finite")] == 1
    assert res[("x", "missing")] == 1
    assert res[("x", "missing_rate")] == 0.25
    assert res[("x", "out_of_range")] == 1  # 100 is beyond the reference maximum
    assert res[("x", "max")] == 100.0
    assert res[("z", "out_of_range")] == 2  # 2.0 (twice) is outside the configured bounds
    assert res[("z", "type_error")] == 1
    assert res[("y", "missing")] == 2
    assert res[("x", "mean")] == 50.0
    assert res[("x", "std")] == 50.0


def test_numeric_bounds_must_name_numeric_features() -> None:
    with pytest.raises(SketchError, match="bounds name features"):
        NumericBlock.from_profile(PROFILE, bounds={"c": (0.0, 1.0)})


def test_numeric_update_validates_shapes() -> None:
    with pytest.raises(SketchError, match=r"shape \(n, 3\)"):
        NUM.update(NUM.empty(), NumericBatch(np.zeros((2, 2))))
    with pytest.raises(SketchError, match="status codes"):
        NUM.update(NUM.empty(), NumericBatch(np.zeros((1, 3)), np.full((1, 3), 7, np.uint8)))


def test_categorical_evaluate() -> None:
    f = CAT.features[0]
    enc = CAT.encoder(0)
    assert list(enc)[: len(f.categories)] or enc  # the encoder holds every known category
    codes = np.c_[
        CAT.codes_for(0, ["a", "a", "d", "zzz", None]),
        CAT.codes_for(1, [True, False, None, True, "x"]),
    ]
    state = CAT.update(CAT.empty(), codes)
    res = {(r.feature, r.metric): r for r in CAT.evaluate(state)}
    assert res[("c", "new_category")].value == 1  # "d" is a rare reference category, not new
    assert res[("c", "missing_rate")].value == 0.2
    assert res[("flag", "new_category")].value == 1
    assert 0.0 <= res[("c", "chi2_pvalue")].value <= 1.0
    assert res[("c", "chi2")].p_value == res[("c", "chi2_pvalue")].value
    same = {(r.feature, r.metric): r.value for r in CAT.evaluate(CAT.reference)}
    assert same[("c", "psi")] == 0.0
    assert same[("c", "js")] == 0.0
    assert same[("c", "chi2")] == 0.0
    empty = CAT.evaluate(CAT.empty())
    assert {r.metric for r in empty} == {"count", "missing", "missing_rate", "new_category"}


def test_quantile_and_status_evaluate() -> None:
    q = QS.update(QS.empty(), np.arange(1.0, 101.0))
    names = [r.metric for r in QS.evaluate(q)]
    assert names == ["latency_p50", "latency_p95", "latency_p99"]
    assert QS.evaluate(QS.empty()) == []
    assert QS.quantile(QS.empty(), 0.5) is None
    s = SC.update(SC.empty(), np.asarray([200, 301, 404, 500, 503, 99]))
    res = {r.metric: r.value for r in SC.evaluate(s)}
    assert res == {"error_rate_4xx": 1 / 6, "error_rate_5xx": 2 / 6}
    assert SC.evaluate(SC.empty()) == []


def test_sketch_parts_follow_the_sketches_table() -> None:
    rng = np.random.default_rng(1)
    state = NUM.update(NUM.empty(), NumericBatch(rng.normal(size=(100, 3))))
    for part in NUM.sketch_parts(state):
        assert part.kind == "hist"
        assert len(part.counts) == len(part.edges) + 1
        assert sum(part.counts) == part.n == 100
    cparts = CAT.sketch_parts(CAT.update(CAT.empty(), np.asarray([[0, 0], [3, 1]], np.int32)))
    assert cparts[0].labels[-1] == "__other__"
    assert len(cparts[0].labels) == len(cparts[0].counts)
    qparts = QS.sketch_parts(QS.update(QS.empty(), np.asarray([1.0, 2.0])))
    assert len(qparts[0].edges) == len(qparts[0].counts)
    assert qparts[0].kind == "quantiles"


def test_a_profile_with_old_category_names_reads_them_as_category_keys() -> None:
    """A profile written when ``1.0`` was not ``"1"`` may hold ``"1.0"``, or both spellings:
    the window's values find them, and the reference's counts join in the first slot."""
    from drifthouse.detectors.reference import FeatureProfile

    old = FeatureProfile(
        name="diet", kind="categorical", count=100, missing=0, missing_rate=0.0,
        categories=["1", "1.0", "2.0", "True"], category_counts=[40, 20, 30, 10],
    )  # fmt: skip
    block = CategoricalBlock([old])
    values = [1] * 60 + ["2"] * 30 + [True] * 10
    state = block.update(block.empty(), block.codes_for(0, values)[:, None])
    assert state.counts[0].tolist() == [60, 0, 30, 10, 0]
    assert block.reference.counts[0].tolist() == [60, 0, 30, 10, 0]
    got = {r.metric: r.value for r in block.evaluate(state)}
    assert got["new_category"] == 0
    assert got["psi"] == pytest.approx(0.0, abs=1e-12)
    assert got["chi2"] == pytest.approx(0.0, abs=1e-12)
