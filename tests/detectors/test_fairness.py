"""Fairness gaps: hand-computed cases, a numpy reference on raw pairs, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from drifthouse.detectors.fairness import (
    demographic_parity_diff,
    equal_opportunity_diff,
    fairness_results,
)
from drifthouse.detectors.label_kinds import Pairs
from drifthouse.detectors.label_sketch import BinarySketch
from drifthouse.errors import SketchError


@pytest.mark.parametrize(
    ("confusion", "dp", "eo"),
    [
        pytest.param({"a": [5, 5, 5, 5], "b": [5, 5, 5, 5]}, 0.0, 0.0, id="identical-groups"),
        pytest.param({"a": [10, 0, 0, 0], "b": [0, 0, 10, 0]}, 1.0, None, id="b-has-no-positives"),
        pytest.param(
            {"a": [8, 2, 6, 4], "b": [3, 1, 10, 6], "c": [1, 1, 1, 1]},
            0.5 - 0.2,
            8 / 12 - 3 / 9,
            id="three-values",
        ),
        pytest.param({"a": [1, 2, 3, 4]}, None, None, id="one-value"),
        pytest.param({}, None, None, id="no-values"),
        pytest.param({"a": [0, 0, 0, 0], "b": [1, 0, 0, 1]}, None, None, id="empty-value-skipped"),
    ],
)
def test_hand_computed(confusion: dict[str, list[int]], dp: float | None, eo: float | None) -> None:
    c = {k: np.asarray(v) for k, v in confusion.items()}
    got_dp = demographic_parity_diff(confusion=c)
    got_eo = equal_opportunity_diff(confusion=c)
    assert got_dp == (pytest.approx(dp) if dp is not None else None)
    assert got_eo == (pytest.approx(eo) if eo is not None else None)


def test_against_raw_pairs_through_the_sketch() -> None:
    rng = np.random.default_rng(11)
    n = 30_000
    group = rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.3, 0.2])
    y = rng.random(n) < 0.3
    bias = np.select([group == "x", group == "y"], [0.0, 0.1], 0.25)
    score = np.clip(rng.normal(0.3 + 0.3 * y + bias, 0.2), 0, 1)
    sk = BinarySketch(threshold=0.5)
    confusion = {}
    for g in ("x", "y", "z"):
        m = group == g
        confusion[g] = sk.update(sk.empty(), Pairs(y[m].astype(np.int64), score[m])).confusion
    pred = score >= 0.5
    rates = [pred[group == g].mean() for g in ("x", "y", "z")]
    tprs = [pred[(group == g) & y].mean() for g in ("x", "y", "z")]
    assert demographic_parity_diff(confusion=confusion) == pytest.approx(max(rates) - min(rates))
    assert equal_opportunity_diff(confusion=confusion) == pytest.approx(max(tprs) - min(tprs))


def test_min_count_leaves_small_groups_out() -> None:
    c = {"big": np.array([50, 50, 50, 50]), "tiny": np.array([1, 0, 0, 0])}
    assert demographic_parity_diff(confusion=c) == pytest.approx(0.5)
    assert demographic_parity_diff(confusion=c, min_count=10) is None


def test_results_and_bounds() -> None:
    c = {"a": np.array([8, 2, 6, 4]), "b": np.array([3, 1, 10, 6])}
    res = {r.metric: r for r in fairness_results(confusion=c)}
    assert set(res) == {"demographic_parity_diff", "equal_opportunity_diff"}
    assert res["demographic_parity_diff"].n_cur == 40
    assert res["equal_opportunity_diff"].n_cur == 21
    assert all(0.0 <= r.value <= 1.0 for r in res.values())


def test_bad_counts_are_refused() -> None:
    with pytest.raises(SketchError, match=r"\[tp, fp, tn, fn\]"):
        demographic_parity_diff(confusion={"a": np.array([1, 2, 3])})
