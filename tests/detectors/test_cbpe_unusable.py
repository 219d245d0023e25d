"""CBPE leaves out, and counts, the scores that are no probabilities: a binary score outside
[0, 1], class probabilities with one outside [0, 1] or not summing to 1 (docs/model-performance.md,
"Performance without labels"). Against the naive twin of ``test_cbpe`` on the usable events."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from drifthouse.detectors import cbpe
from drifthouse.detectors.base import State
from drifthouse.detectors.calibration import Calibration, IsotonicMap, apply_map
from drifthouse.detectors.cbpe import SUM_TOLERANCE, CbpeBatch, CbpeSketch, CbpeState
from tests.detectors.test_cbpe import BINARY_MAP, naive_binary

RNG = np.random.default_rng(7)


def _results(sk: CbpeSketch, state: CbpeState) -> dict[str, float]:
    return {r.metric: r.value for r in sk.evaluate(state)}


def test_binary_scores_outside_0_1_are_left_out_and_counted() -> None:
    score = RNG.uniform(size=2_000)
    sent = score.copy()
    sent[::5] = np.round(score[::5] * 100)  # 20% as percentages
    sent[1], sent[2], sent[3] = -0.25, 1.0000001, math.nan
    sk = CbpeSketch(Calibration(maps=[BINARY_MAP], threshold=0.5), bins=50)
    state = sk.update(sk.empty(), CbpeBatch(sent))
    ok = (sent >= 0) & (sent <= 1)
    est = sk.estimates(state)
    assert est.n == int(ok.sum())
    ours = sk.values(est)
    naive = naive_binary(sent[ok], apply_map(BINARY_MAP, sent[ok]), 0.5)
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert ours[metric] == pytest.approx(naive[metric], abs=1e-9), metric
    assert abs(ours["roc_auc"] - naive["roc_auc"]) <= est.auc_bound[0] + 1e-9
    assert _results(sk, state)["cbpe_unusable"] == sent.size - int(ok.sum())


MAPS = [BINARY_MAP, None, IsotonicMap(x=[0.2, 0.8], y=[0.1, 0.95])]


@pytest.mark.parametrize(
    ("spoil", "usable"),
    [
        pytest.param(lambda p: -p, False, id="negative"),
        pytest.param(lambda p: 3 * p, False, id="times-3"),
        pytest.param(lambda p: np.r_[p[0] + 0.5, p[1:] * 0.5 / p[1:].sum()], False, id="above-1"),
        pytest.param(lambda p: np.round(p, 2), True, id="two-decimals"),
        pytest.param(lambda p: p * (1 + 1e-4), True, id="off-by-1e-4"),
    ],
)
def test_multiclass_probabilities_must_be_probabilities(spoil: object, usable: bool) -> None:
    n = 1_500
    raw = RNG.dirichlet([2, 1, 1], size=n)
    pred = raw.argmax(axis=1).astype(np.intp)
    sent = raw.copy()
    for i in range(0, n, 5):
        sent[i] = spoil(raw[i])  # type: ignore[operator]
    sent[1, 0] = math.nan  # no score for one class
    sk = CbpeSketch(Calibration(classes=["a", "b", "c"], maps=MAPS), bins=40)
    state = sk.update(sk.empty(), CbpeBatch(sent, pred))
    ok = np.all((sent >= 0) & (sent <= 1), axis=1) & (
        np.abs(sent.sum(axis=1) - 1) <= SUM_TOLERANCE * 3
    )
    assert ok[::5].all() == usable
    est = sk.estimates(state)
    assert est.n == int(ok.sum())
    ours = sk.values(est)
    p = np.column_stack([apply_map(m, sent[ok][:, j]) for j, m in enumerate(MAPS)])
    p = p / p.sum(axis=1, keepdims=True)
    chosen = p[np.arange(int(ok.sum())), pred[ok]]
    assert ours["accuracy"] == pytest.approx(chosen.mean(), abs=1e-9)
    assert _results(sk, state)["cbpe_unusable"] == n - int(ok.sum())


def test_no_unusable_row_when_every_score_is_used() -> None:
    sk = CbpeSketch(Calibration(maps=[None]))
    assert "cbpe_unusable" not in _results(
        sk, sk.update(sk.empty(), CbpeBatch(RNG.uniform(size=9)))
    )


def test_unusable_counts_merge_and_round_trip() -> None:
    sk = CbpeSketch(Calibration(maps=[None]))
    a = sk.update(sk.empty(), CbpeBatch(np.array([0.2, 40.0, math.nan])))
    b = sk.update(sk.empty(), CbpeBatch(np.array([-1.0, 0.9])))
    merged = sk.merge(a, b)
    assert _results(sk, merged)["cbpe_unusable"] == 3
    assert CbpeState.from_bytes(merged.to_bytes()).equals(merged)


def test_a_state_stored_before_the_count_loads_with_none() -> None:
    """States written before ``unusable`` existed (windows' sketches, merger snapshots) load
    with a count of 0."""

    @dataclasses.dataclass(frozen=True, eq=False)
    class CbpeState(State):  # the state as it was: serialised under the same name
        counts: np.ndarray
        mass: np.ndarray

    sk = CbpeSketch(Calibration(maps=[None]), bins=10)
    state = sk.update(sk.empty(), CbpeBatch(np.array([0.2, 0.7])))
    old = CbpeState(layout=state.layout, counts=state.counts, mass=state.mass).to_bytes()
    assert cbpe.CbpeState.from_bytes(old).equals(state)
