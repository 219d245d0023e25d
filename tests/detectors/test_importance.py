"""Feature-importance shift: mutual information, a changed relationship, merges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.detectors.importance import (
    ImportanceBatch,
    ImportanceSketch,
    ImportanceState,
    importance_shift,
    mutual_information,
    reference_importance,
)
from drifthouse.errors import SketchError
from tests.detectors.strategies import make_profile

N = 20_000


def _data(seed: int, driver: str) -> tuple[dict[str, np.ndarray | list[str]], np.ndarray]:
    """x1, x2 numeric, c categorical; the prediction follows ``driver`` (and a little of c)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=N), rng.normal(size=N)
    c = rng.choice(["a", "b", "c"], size=N)
    lift = np.select([c == "a", c == "b"], [0.3, 0.0], -0.3)
    drive = x1 if driver == "x1" else x2
    pred = 1 / (1 + np.exp(-(2 * drive + lift + 0.3 * rng.normal(size=N))))
    return {"x1": x1, "x2": x2, "c": list(c)}, pred


COLS, PRED = _data(0, "x1")
PROFILE = make_profile(COLS, prediction=PRED)
REF = reference_importance(PROFILE, COLS, PRED)
SK = ImportanceSketch.from_profile(PROFILE, reference=REF)


def _window(seed: int, driver: str) -> ImportanceState:
    cols, pred = _data(seed, driver)
    return SK.update_columns(SK.empty(), cols, pred)


def _shift(state: ImportanceState) -> float:
    return {r.metric: r.value for r in SK.evaluate(state) if r.feature == ""}["importance_shift"]


def test_mutual_information_hand_computed() -> None:
    assert mutual_information(joint=np.array([[5, 0], [0, 5]])) == pytest.approx(np.log(2))
    assert mutual_information(joint=np.array([[5, 5], [5, 5]])) == 0.0
    assert mutual_information(joint=np.zeros((3, 3))) == 0.0
    # Against the definition on an arbitrary table.
    t = np.array([[3, 1, 0], [2, 7, 4]], dtype=float)
    p = t / t.sum()
    px, py = p.sum(1), p.sum(0)
    ref = sum(
        p[i, j] * np.log(p[i, j] / (px[i] * py[j])) for i in range(2) for j in range(3) if p[i, j]
    )
    assert mutual_information(joint=t) == pytest.approx(ref)


def test_reference_ranks_the_driver_first() -> None:
    assert REF["x1"] > REF["c"] > REF["x2"]


def test_same_relationship_barely_shifts() -> None:
    assert _shift(_window(1, "x1")) < 0.05


def test_changed_relationship_shifts() -> None:
    state = _window(2, "x2")
    assert _shift(state) > 0.8
    shares = {r.feature: r.value for r in SK.evaluate(state) if r.metric == "importance"}
    assert max(shares, key=lambda k: shares[k]) == "x2"
    assert sum(shares.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("r", "c", "want"),
    [
        pytest.param([1, 0], [1, 0], 0.0, id="same"),
        pytest.param([2, 0], [0, 5], 1.0, id="disjoint"),
        pytest.param([1, 1], [3, 1], 0.25, id="scale-free"),
        pytest.param([0, 0], [1, 1], None, id="no-information"),
    ],
)
def test_importance_shift_cases(r: list[float], c: list[float], want: float | None) -> None:
    got = importance_shift(reference=np.array(r, float), current=np.array(c, float))
    assert got == (pytest.approx(want) if want is not None else None)


def test_missing_and_unseen_values_have_bins() -> None:
    cols: dict[str, list[object]] = {
        "x1": [None, 0.0, float("nan")],
        "x2": [1.0, 1.0, 1.0],
        "c": ["zzz", None, "a"],
    }
    state = SK.update_columns(SK.empty(), cols, [0.1, float("nan"), 0.9])
    assert int(state.skipped[0]) == 1
    assert int(state.joint[0].sum()) == 2
    k = len(PROFILE.feature("c").categories)
    assert int(state.joint[2, k].sum()) == 1  # 'zzz' in other
    assert int(state.joint[0, SK.n_bins[0] - 1].sum()) == 2  # None and NaN missing


def test_categorical_prediction_is_refused() -> None:
    p = make_profile({"x": np.arange(100.0)}, prediction=["a", "b"] * 50)
    with pytest.raises(SketchError, match="numeric prediction"):
        ImportanceSketch.from_profile(p)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400), st.integers(0, 1_000))
def test_merge_equals_concatenation(a: int, b: int, seed: int) -> None:
    cols, pred = _data(seed, "x1")
    part = {k: v[: a + b] for k, v in cols.items()}
    first = SK.update_columns(SK.empty(), {k: v[:a] for k, v in part.items()}, pred[:a])
    second = SK.update_columns(SK.empty(), {k: v[a:] for k, v in part.items()}, pred[a : a + b])
    whole = SK.update_columns(SK.empty(), part, pred[: a + b])
    assert SK.merge(first, second).equals(whole)
    assert SK.merge(second, first).equals(whole)
    assert SK.merge(whole, SK.empty()).equals(whole)
    assert ImportanceState.from_bytes(whole.to_bytes()).equals(whole)


def test_takes_the_pipeline_columns() -> None:
    from drifthouse.config import MetricsConfig
    from drifthouse.detectors.columns import extract
    from drifthouse.detectors.model_sketch import ModelSketch
    from drifthouse.events import PredictionEvent

    ms = ModelSketch("m", PROFILE, MetricsConfig())
    cols, pred = _data(5, "x1")
    events = [
        PredictionEvent(
            model="m",
            ts_ms=i,
            features={"x1": float(cols["x1"][i]), "x2": float(cols["x2"][i]), "c": cols["c"][i]},
            prediction=float(pred[i]),
        )
        for i in range(2_000)
    ]
    c = extract(events, ms.layout)
    via_columns = SK.update(SK.empty(), ImportanceBatch(c.numeric, c.status, c.codes, c.score))
    direct = SK.update_columns(SK.empty(), {k: v[:2_000] for k, v in cols.items()}, pred[:2_000])
    assert via_columns.equals(direct)
