"""CBPE: the binned sketch against a naive per-event twin (NannyML's ``estimate_*`` formulas
on unbinned scores), its merge laws, the sampling-error band on calibrated scores, and the
isotonic fit against SciPy's."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import isotonic_regression

from drifthouse.detectors.calibration import (
    Calibration,
    IsotonicMap,
    apply_map,
    fit_isotonic,
    needs_calibration,
)
from drifthouse.detectors.cbpe import BAND, CbpeBatch, CbpeSketch
from drifthouse.detectors.cbpe_fit import fit_binary, fit_multiclass
from drifthouse.errors import ProfileError, SketchError

BINARY_MAP = IsotonicMap(x=[0.0, 0.3, 0.6, 1.0], y=[0.05, 0.2, 0.7, 0.9])
probabilities = st.floats(0.0, 1.0, allow_nan=False)


def naive_binary(raw: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """NannyML's estimate_accuracy/precision/recall/f1 and estimate_roc_auc, per event."""
    pred = raw >= threshold
    tp, fp = p[pred].sum(), (1 - p[pred]).sum()
    fn, tn = p[~pred].sum(), (1 - p[~pred]).sum()
    order = np.argsort(-raw, kind="stable")
    q = p[order]
    tps = np.r_[0, np.cumsum(q)]
    fps = np.r_[0, np.cumsum(1 - q)]
    auc = (
        float(np.trapezoid(tps / tps[-1], fps / fps[-1]))
        if tps[-1] > 0 and fps[-1] > 0
        else math.nan
    )
    return {
        "accuracy": (tp + tn) / len(p),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": tp / (tp + 0.5 * (fp + fn)) if tp + 0.5 * (fp + fn) else 0.0,
        "roc_auc": auc,
    }


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 300), elements=probabilities))
def test_binary_matches_the_naive_twin(raw: np.ndarray) -> None:
    sk = CbpeSketch(Calibration(maps=[BINARY_MAP], threshold=0.5), bins=50)
    est = sk.estimates(sk.update(sk.empty(), CbpeBatch(raw)))
    ours = sk.values(est)
    naive = naive_binary(raw, apply_map(BINARY_MAP, raw), 0.5)
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert ours[metric] == pytest.approx(naive[metric], abs=1e-9), metric
    if math.isnan(naive["roc_auc"]):
        assert math.isnan(ours["roc_auc"])
    else:
        # Pairs sharing a bin count half: never further off than the reported bound.
        assert abs(ours["roc_auc"] - naive["roc_auc"]) <= est.auc_bound[0] + 1e-9


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 200).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.float64, (n, 3), elements=st.floats(0.001, 1.0)),
            hnp.arrays(np.intp, n, elements=st.integers(-1, 2)),
        )
    )
)
def test_multiclass_matches_the_naive_twin(drawn: tuple[np.ndarray, np.ndarray]) -> None:
    raw, pred = drawn
    raw = raw / raw.sum(axis=1, keepdims=True)
    maps = [BINARY_MAP, None, IsotonicMap(x=[0.2, 0.8], y=[0.1, 0.95])]
    sk = CbpeSketch(Calibration(classes=["a", "b", "c"], maps=maps), bins=40)
    ours = sk.values(sk.estimates(sk.update(sk.empty(), CbpeBatch(raw, pred))))
    p = np.column_stack([apply_map(m, raw[:, j]) for j, m in enumerate(maps)])
    p = p / p.sum(axis=1, keepdims=True)
    per_class = [naive_binary(np.where(pred == j, 1.0, 0.0), p[:, j], 0.5) for j in range(3)]
    for metric in ("precision", "recall", "f1"):
        assert ours[metric] == pytest.approx(np.mean([c[metric] for c in per_class]), abs=1e-9)
    chosen = np.where(pred >= 0, p[np.arange(len(pred)), np.maximum(pred, 0)], 0.0)
    assert ours["accuracy"] == pytest.approx(chosen.mean(), abs=1e-9)


batches = st.lists(hnp.arrays(np.float64, st.integers(0, 50), elements=probabilities), max_size=6)


@settings(max_examples=100, deadline=None)
@given(batches, st.randoms(use_true_random=False))
def test_merged_partials_give_identical_estimates(parts: list[np.ndarray], rnd: object) -> None:
    sk = CbpeSketch(Calibration(maps=[BINARY_MAP]), bins=30)
    whole = sk.empty()
    for b in parts:
        sk.update(whole, CbpeBatch(b))
    panes = [sk.update(sk.empty(), CbpeBatch(b)) for b in parts]
    rnd.shuffle(panes)  # type: ignore[attr-defined]
    merged = sk.empty()
    for pane in panes:
        merged = sk.merge(merged, pane)
    assert merged.equals(whole)
    one_pass = sk.update(sk.empty(), CbpeBatch(np.concatenate(parts) if parts else np.empty(0)))
    assert one_pass.equals(whole)
    assert sk.evaluate(merged) == sk.evaluate(whole)


def test_calibrated_scores_estimate_accuracy_within_the_band() -> None:
    """Perfectly calibrated scores (labels drawn from them): the realized accuracy of a window
    falls within three sampling errors of the estimate, and the errors scale as NannyML's."""
    rng = np.random.default_rng(7)
    ref = rng.beta(2, 2, 50_000)
    cal = fit_binary(ref, (rng.uniform(size=ref.size) < ref).astype(np.float64))
    sk = CbpeSketch(cal)
    z = []
    for _ in range(100):
        s = rng.beta(2, 2, 2_000)
        y = rng.uniform(size=s.size) < s
        realized = float(np.mean((s >= 0.5) == y))
        st_ = sk.update(sk.empty(), CbpeBatch(s))
        est = sk.values(sk.estimates(st_))["accuracy"]
        err = sk.sampling_error("accuracy", s.size)
        assert abs(est - realized) <= BAND * err
        z.append((est - realized) / err)
    # The sampling error is a standard deviation: |z| averages about sqrt(2 / pi).
    assert 0.6 < float(np.mean(np.abs(z))) < 1.0


def test_evaluate_writes_estimates_and_bands() -> None:
    sk = CbpeSketch(fit_binary(np.linspace(0, 1, 400), (np.arange(400) % 3 == 0) * 1.0))
    rows = {
        r.metric: r for r in sk.evaluate(sk.update(sk.empty(), CbpeBatch(np.linspace(0, 1, 50))))
    }
    for m in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert rows[f"estimated_{m}_lower"].value <= rows[f"estimated_{m}"].value
        assert rows[f"estimated_{m}"].value <= rows[f"estimated_{m}_upper"].value
        assert rows[f"estimated_{m}"].n_cur == 50
        assert rows[f"estimated_{m}"].n_ref == 400
    assert 0 <= rows["estimated_roc_auc_binning_error"].value < 0.01
    assert sk.evaluate(sk.empty()) == []


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 200).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0])),
            hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0])),
        )
    )
)
def test_isotonic_fit_matches_scipy(drawn: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = drawn
    m = fit_isotonic(x, y)
    ux = np.unique(x)
    means = np.array([y[x == v].mean() for v in ux])
    weights = np.array([(x == v).sum() for v in ux], dtype=np.float64)
    expected = isotonic_regression(means, weights=weights).x
    assert apply_map(m, ux) == pytest.approx(expected, abs=1e-12)


def test_needs_calibration() -> None:
    rng = np.random.default_rng(1)
    s = rng.uniform(size=20_000)
    y = (rng.uniform(size=s.size) < s).astype(np.float64)
    # (Calibrated scores may go either way: the rule compares two noisy held-out errors.)
    assert needs_calibration(y, s**3)  # too low everywhere
    assert not needs_calibration(y, y * 0.9 + 0.05)  # AUC 1
    assert not needs_calibration(np.ones(10), s[:10])  # one class


def test_calibration_round_trips_and_is_checked() -> None:
    cal = fit_multiclass(
        np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]] * 10),
        ["a", "b", "c", "b"] * 10,
        ["a", "b", "c", "a"] * 10,
        ["a", "b", "c"],
    )
    assert msgspec.json.decode(msgspec.json.encode(cal), type=Calibration) == cal
    with pytest.raises(ProfileError, match="needs 3 maps"):
        Calibration(classes=["a", "b", "c"], maps=[None]).validate()
    with pytest.raises(ProfileError, match="isotonic"):
        Calibration(maps=[IsotonicMap(x=[0.5, 0.2], y=[0.1, 0.2])]).validate()
    with pytest.raises(ProfileError, match="at least 4"):
        fit_binary(np.array([0.1, 0.9]), np.array([0.0, 1.0]))
    sk = CbpeSketch(cal)
    with pytest.raises(SketchError, match="predicted class"):
        sk.update(sk.empty(), CbpeBatch(np.full((2, 3), 1 / 3)))
    with pytest.raises(SketchError, match=r"\(events, 3\)"):
        sk.update(sk.empty(), CbpeBatch(np.full(2, 0.5)))


def test_missing_scores_are_left_out() -> None:
    sk = CbpeSketch(Calibration(maps=[None]))
    st_ = sk.update(sk.empty(), CbpeBatch(np.array([0.9, np.nan, 0.1])))
    assert sk.estimates(st_).n == 2
