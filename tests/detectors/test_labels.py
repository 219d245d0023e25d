"""Label metrics against hand-computed values and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats as sst

from drifthouse.detectors import labels


def test_binary_metrics_by_hand() -> None:
    y = np.asarray([1, 1, 1, 0, 0, 0], dtype=bool)
    s = np.asarray([0.9, 0.6, 0.2, 0.7, 0.1, 0.3])
    m = labels.binary_metrics(y_true=y, score=s, threshold=0.5)
    # predicted 1: 0.9, 0.6, 0.7 -> tp 2, fp 1, fn 1, tn 2
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # pairs (pos, neg) ranked right: 0.9>all 3, 0.6>0.1,0.3 (2), 0.2>0.1 (1) -> 6/9
    assert m["roc_auc"] == pytest.approx(6 / 9)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 60).flatmap(
        lambda n: st.tuples(
            hnp.arrays(bool, n),
            hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])),
        )
    )
)
def test_roc_auc_is_mann_whitney(pair: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = pair
    auc = labels.roc_auc(y_true=y, score=s)
    if y.all() or not y.any():
        assert auc is None
        return
    u = sst.mannwhitneyu(s[y], s[~y]).statistic
    assert auc == pytest.approx(u / (y.sum() * (~y).sum()))


def test_regression_metrics() -> None:
    y = np.asarray([1.0, 2.0, 0.0, 4.0])
    p = np.asarray([1.5, 2.0, 1.0, 3.0])
    m = labels.regression_metrics(y_true=y, y_pred=p)
    assert m["mae"] == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 1 + 1) / 4))
    assert m["r2"] == pytest.approx(1 - 2.25 / np.sum((y - y.mean()) ** 2))
    assert m["mape"] == pytest.approx((0.5 / 1 + 0 + 1 / 4) / 3)  # y == 0 left out
    assert "r2" not in labels.regression_metrics(y_true=np.ones(3), y_pred=np.zeros(3))


@pytest.mark.parametrize(
    ("y_true", "y_pred", "task", "keys"),
    [
        pytest.param(
            [0, 1, 1],
            [0.2, 0.8, 0.4],
            "classification",
            {"accuracy", "precision", "recall", "f1", "roc_auc"},
            id="scores",
        ),
        pytest.param(
            ["true", "false"],
            ["true", "true"],
            "classification",
            {"accuracy", "precision", "recall", "f1"},
            id="binary-labels",
        ),
        pytest.param(
            ["cat", "dog", "cow"],
            ["cat", "dog", "dog"],
            "classification",
            {"accuracy"},
            id="multiclass",
        ),
        pytest.param(
            [1.5, 2.5, 10.0],
            [1.0, 2.0, 9.0],
            "regression",
            {"mae", "rmse", "r2", "mape"},
            id="regression",
        ),
        pytest.param([None, 1], [0.3, None], "classification", set(), id="nothing-paired"),
    ],
)
def test_reference_metrics_picks_the_task(
    y_true: list[object], y_pred: list[object], task: str, keys: set[str]
) -> None:
    got_task, metrics = labels.reference_metrics(y_true=y_true, y_pred=y_pred)
    assert got_task == task
    assert set(metrics) == keys
    assert all(math.isfinite(v) for v in metrics.values())


def test_numeric_fast_path_agrees_with_the_general_one() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500)
    s = rng.random(500)
    fast = labels.reference_metrics(y_true=y, y_pred=s)
    general = labels.reference_metrics(y_true=[str(v) for v in y], y_pred=list(s))
    assert fast[0] == general[0] == "classification"
    assert fast[1] == pytest.approx(general[1])
    yr = rng.normal(size=200)
    assert labels.reference_metrics(y_true=yr, y_pred=yr + 0.1)[0] == "regression"
