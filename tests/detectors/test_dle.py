"""Direct loss estimation (drifthouse.detectors.dle): the kernel against a NumPy twin, the
slots, the fit, the estimates and their band."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drifthouse.config import MetricsConfig
from drifthouse.detectors._dle_kernels import dle_update
from drifthouse.detectors.base import Context
from drifthouse.detectors.categorical import CategoricalBlock
from drifthouse.detectors.columns import extract
from drifthouse.detectors.dle import CAP, DleBatch, DleSketch, LossModel, slots_of
from drifthouse.detectors.dle_fit import fit_additive, fit_loss_model
from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch, ModelState
from drifthouse.errors import ProfileError, SketchError
from drifthouse.events import PredictionEvent
from tests.detectors.strategies import make_profile


def _twin(sk: DleSketch, slots: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The kernel in NumPy: the same float operations in the same order per event."""
    m = sk.model
    a = np.full(slots.shape[0], m.intercept_abs)
    s = np.full(slots.shape[0], m.intercept_sq)
    for j in range(slots.shape[1]):
        a = a + sk.table_abs[sk.offsets[j] + slots[:, j]]
        s = s + sk.table_sq[sk.offsets[j] + slots[:, j]]
    qa = np.rint(np.minimum(np.maximum(a, 0.0) * (1.0 / m.unit_abs), CAP)).astype(np.int64)
    qs = np.rint(np.minimum(np.maximum(s, 0.0) * (1.0 / m.unit_sq), CAP)).astype(np.int64)
    return np.array([ok.sum(), qa[ok].sum(), qs[ok].sum()], dtype=np.int64)


def _data(n: int, seed: int) -> tuple[dict[str, object], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = rng.choice(["a", "b", "c"], size=n)
    pred = rng.uniform(0, 10, size=n)
    scale = 1.0 + np.abs(x) + (c == "b") * 2.0  # the error grows with |x| and in category b
    label = pred + rng.normal(size=n) * scale
    return {"x": x, "c": list(c)}, pred, label


def _sketch(n: int = 5_000, seed: int = 0) -> tuple[DleSketch, object]:
    feats, pred, label = _data(n, seed)
    profile = make_profile(feats, prediction=pred, label=label, task="regression")
    assert profile.loss_model is not None
    return DleSketch(profile.loss_model, [0], [0]), profile


def _batch(sk: DleSketch, profile: object, n: int, seed: int) -> DleBatch:
    feats, pred, _ = _data(n, seed)
    x = np.asarray(feats["x"], dtype=np.float64)
    x[::7] = np.nan  # missing values take the missing slot
    status = np.where(np.isnan(x), 1, 0).astype(np.uint8)[:, None]
    codes = CategoricalBlock(profile.categorical).codes_for(0, feats["c"])  # type: ignore[attr-defined]
    pred[::11] = np.nan  # no prediction: not counted
    pred[::13] = 1e9  # beyond the reference's grid: the outermost bin
    return DleBatch(x[:, None], status, codes[:, None], pred)


def test_kernel_matches_numpy_twin() -> None:
    sk, profile = _sketch()
    batch = _batch(sk, profile, 3_000, 1)
    slots, ok = sk.slots(batch)
    got = sk.update(sk.empty(), batch).sums
    assert got.tolist() == _twin(sk, slots, ok).tolist()
    assert got[0] == int(np.isfinite(batch.score).sum())


def test_batch_cuts_change_no_bit() -> None:
    sk, profile = _sketch()
    batch = _batch(sk, profile, 1_000, 2)
    whole = sk.update(sk.empty(), batch)
    parts = sk.empty()
    for lo in range(0, 1_000, 137):
        cut = slice(lo, lo + 137)
        sub = DleBatch(batch.numeric[cut], batch.status[cut], batch.codes[cut], batch.score[cut])
        parts = sk.merge(parts, sk.update(sk.empty(), sub))
    assert whole.equals(parts)


def test_estimates_follow_the_errors_of_a_shifted_window() -> None:
    """More events in the noisy category and at larger |x| (within the reference's range:
    like a tree, a table cannot extrapolate past its outermost bins): the estimate rises with
    the realized MAE, and each lies within a few sampling errors of it."""
    sk, profile = _sketch(20_000)
    block = CategoricalBlock(profile.categorical)  # type: ignore[attr-defined]
    rng = np.random.default_rng(9)
    estimated = []
    for shift in (0.0, 0.3):
        n = 6_000
        x = rng.normal(size=n) * (1.0 + shift)
        c = rng.choice(["a", "b", "c"], size=n, p=[0.2, 0.6, 0.2] if shift else None)
        pred = rng.uniform(0, 10, size=n)
        err = rng.normal(size=n) * (1.0 + np.abs(x) + (c == "b") * 2.0)
        codes = block.codes_for(0, list(c))
        batch = DleBatch(x[:, None], np.zeros((n, 1), np.uint8), codes[:, None], pred)
        st = sk.update(sk.empty(), batch)
        _, mae, rmse = sk.estimates(st)
        se = sk.model.mae_std / math.sqrt(n)
        assert abs(mae - np.mean(np.abs(err))) <= 4 * se, (shift, mae, np.mean(np.abs(err)))
        assert rmse == pytest.approx(np.sqrt(np.mean(err**2)), rel=0.06)
        estimated.append(mae)
    assert estimated[1] > 1.2 * estimated[0]


def test_evaluate_writes_estimates_and_band() -> None:
    sk, profile = _sketch()
    st = sk.update(sk.empty(), _batch(sk, profile, 2_000, 3))
    rows = {r.metric: r for r in sk.evaluate(st)}
    assert set(rows) == {
        f"estimated_{m}{s}" for m in ("mae", "rmse") for s in ("", "_lower", "_upper")
    }
    n = int(st.sums[0])
    m = sk.model
    for metric, err in (
        ("mae", m.mae_std / math.sqrt(n)),
        ("rmse", math.sqrt(m.se_std**2 / (4 * n * m.se_mean))),
    ):
        v = rows[f"estimated_{metric}"].value
        assert rows[f"estimated_{metric}_upper"].value == v + 3 * err
        assert rows[f"estimated_{metric}_lower"].value == max(0.0, v - 3 * err)
        assert rows[f"estimated_{metric}"].n_cur == n
        assert rows[f"estimated_{metric}"].n_ref == m.events
    assert sk.evaluate(sk.empty()) == []


def test_fit_additive_recovers_an_additive_target() -> None:
    rng = np.random.default_rng(4)
    slots = np.column_stack([rng.integers(0, 5, 20_000), rng.integers(0, 3, 20_000)])
    a, b = np.array([0.0, 1.0, 2.0, 3.0, 4.0]), np.array([0.0, 10.0, -5.0])
    target = 7.0 + a[slots[:, 0]] + b[slots[:, 1]]
    intercept, tables = fit_additive(slots, [5, 3], target, shrink=0.0, rounds=50)
    fitted = intercept + tables[slots[:, 0]] + tables[5 + slots[:, 1]]
    assert np.max(np.abs(fitted - target)) < 1e-9


def test_fit_needs_labelled_rows() -> None:
    model = fit_loss_model(
        numeric=[],
        categorical=[],
        prediction_edges=[1.0],
        prediction_coarse=[1.0],
        y_true=np.full(500, np.nan),
        y_pred=np.ones(500),
    )
    assert model is None


def test_profiles_without_labels_or_of_classifiers_have_no_loss_model() -> None:
    feats, pred, _ = _data(500, 5)
    assert make_profile(feats, prediction=pred).loss_model is None
    scores = np.random.default_rng(0).uniform(size=500)
    labels = (scores > 0.5).astype(int)
    assert make_profile(feats, prediction=scores, label=labels).loss_model is None


def test_bad_codes_and_models_are_refused() -> None:
    sk, _ = _sketch()
    bad = DleBatch(np.zeros((1, 1)), np.zeros((1, 1), np.uint8), np.array([[99]], np.int32),
                   np.array([1.0]))  # fmt: skip
    with pytest.raises(SketchError, match=r"codes of 'c' must lie in -1 \.\. "):
        sk.update(sk.empty(), bad)
    broken = LossModel(**{**_fields(sk.model), "table_abs": [1.0]})
    with pytest.raises(ProfileError, match=r"loss_model: tables of 1/"):
        broken.validate()
    with pytest.raises(SketchError, match="one column index per feature"):
        DleSketch(sk.model, [], [0])


def _fields(model: LossModel) -> dict[str, object]:
    return {f: getattr(model, f) for f in model.__struct_fields__}


def test_slots_of_missing_and_outer_bins() -> None:
    sk, _ = _sketch()
    m = sk.model
    x = np.array([[np.nan], [-1e300], [1e300], [0.0]])
    slots, ok = slots_of(
        m, x, np.array([[False], [True], [True], [True]]), np.full((4, 1), -1, np.int32),
        np.array([np.nan, 0.0, 1.0, 2.0]),
    )  # fmt: skip
    assert slots[:, 0].tolist()[:3] == [0, 1, len(m.numeric_edges[0]) + 1]
    assert slots[:, 1].tolist() == [0, 0, 0, 0]  # category: missing
    assert ok.tolist() == [False, True, True, True]
    out = np.zeros(3, np.int64)
    dle_update(slots, ok, sk.offsets, sk.table_abs, sk.table_sq, m.intercept_abs,
               m.intercept_sq, 1 / m.unit_abs, 1 / m.unit_sq, CAP, out)  # fmt: skip
    assert out[0] == 3


def test_model_sketch_writes_estimates_from_panes_that_merge_and_serialise() -> None:
    """A regression model's panes carry the DLE state: merged in any order and through bytes
    they give the window the same bits as one pass."""
    _, profile = _sketch()
    model = ModelSketch("m", profile, MetricsConfig())  # type: ignore[arg-type]
    assert model.dle is not None
    feats, pred, _ = _data(900, 8)
    events = [
        PredictionEvent(
            model="m",
            ts_ms=i,
            features={"x": float(feats["x"][i]), "c": feats["c"][i]},  # type: ignore[index]
            prediction=float(pred[i]),
        )
        for i in range(900)
    ]

    def pane(lo: int, hi: int) -> ModelState:
        return model.update(model.empty(), ModelBatch(extract(events[lo:hi], model.layout)))

    one = pane(0, 900)
    a, b, c = pane(0, 300), pane(300, 600), pane(600, 900)
    merged = model.merge(model.merge(c, a), b)
    wire = ModelState.from_bytes(merged.to_bytes())
    assert wire.dle is not None
    assert one.dle is not None
    assert wire.dle.equals(one.dle)  # (float moments of other parts merge up to rounding)
    ctx = Context(window_ms=60_000)
    rows = {r.metric: r.value for r in model.evaluate(wire, ctx) if r.metric.startswith("est")}
    assert rows == {r.metric: r.value for r in model.dle.evaluate(one.dle)}
    assert {"estimated_mae", "estimated_rmse"} <= rows.keys()
