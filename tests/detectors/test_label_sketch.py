"""Label sketches against hand-computed cases, numpy/scipy references and river's metrics."""

from __future__ import annotations

import doctest
import importlib
import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import metrics as river_metrics

from drifthouse.detectors.base import Context
from drifthouse.detectors.label_kinds import Pairs
from drifthouse.detectors.label_sketch import (
    BinarySketch,
    ClassSketch,
    LabelBatch,
    LabelSketch,
    LabelState,
    RegressionSketch,
    auc_binning_error,
    roc_auc_binned,
)
from drifthouse.detectors.labels import roc_auc
from drifthouse.errors import SketchError

rm: Any = river_metrics  # river's metric classes are not annotated

BIN = BinarySketch(threshold=0.5, bins=1_000)
CLS = ClassSketch(["a", "b", "c"])
REG = RegressionSketch()


def _values(results: list) -> dict[str, float]:  # type: ignore[type-arg]
    return {r.metric: r.value for r in results}


# -- binary ------------------------------------------------------------------------------------


def test_binary_hand_computed() -> None:
    y = np.array([1, 1, 1, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.3, 0.7, 0.2, 0.1])
    v = _values(BIN.evaluate(BIN.update(BIN.empty(), Pairs(y, s))))
    # tp=2 fp=1 tn=2 fn=1; AUC: 0.9 beats 3 negatives, 0.6 and 0.3 beat 2 each: 7 of 9 pairs.
    assert v["accuracy"] == pytest.approx(4 / 6)
    assert v["precision"] == pytest.approx(2 / 3)
    assert v["recall"] == pytest.approx(2 / 3)
    assert v["f1"] == pytest.approx(2 / 3)
    assert v["roc_auc"] == pytest.approx(7 / 9)


def test_threshold_is_inclusive() -> None:
    state = BIN.update(BIN.empty(), Pairs(np.array([1]), np.array([0.5])))
    assert state.confusion.tolist() == [1, 0, 0, 0]


def test_one_class_has_no_auc() -> None:
    v = _values(
        BIN.evaluate(BIN.update(BIN.empty(), Pairs(np.array([1, 1]), np.array([0.2, 0.9]))))
    )
    assert "roc_auc" not in v
    assert v["recall"] == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_binned_auc_within_bound_of_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(20_000) < 0.3
    s = 1 / (1 + np.exp(-rng.normal(0.8 * y, 1.0)))
    state = BIN.update(BIN.empty(), Pairs(y.astype(np.int64), s))
    auc = roc_auc_binned(pos_counts=state.hist[1], neg_counts=state.hist[0])
    exact = roc_auc(y_true=y, score=s)  # scipy ranks, ties one half
    bound = auc_binning_error(pos_counts=state.hist[1], neg_counts=state.hist[0])
    assert auc is not None
    assert exact is not None
    assert abs(auc - exact) <= bound + 1e-12
    assert bound < 1e-3


def test_binned_auc_is_exact_on_grid_scores() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(5_000) < 0.4
    s = (rng.integers(0, 1_000, size=5_000) + 0.5) / 1_000  # one score per bin: ties match
    state = BIN.update(BIN.empty(), Pairs(y.astype(np.int64), s))
    auc = roc_auc_binned(pos_counts=state.hist[1], neg_counts=state.hist[0])
    assert auc == pytest.approx(roc_auc(y_true=y, score=s), abs=1e-12)


def test_binary_against_river() -> None:
    rng = np.random.default_rng(7)
    y = rng.random(3_000) < 0.35
    s = np.clip(rng.normal(0.35 + 0.25 * y, 0.2), 0, 1)
    v = _values(BIN.evaluate(BIN.update(BIN.empty(), Pairs(y.astype(np.int64), s))))
    river = {
        "accuracy": rm.Accuracy(),
        "precision": rm.Precision(),
        "recall": rm.Recall(),
        "f1": rm.F1(),
    }
    auc = rm.ROCAUC(n_thresholds=1_000)
    for yi, si in zip(y.tolist(), s.tolist(), strict=True):
        for m in river.values():
            m.update(yi, si >= 0.5)
        auc.update(yi, {True: si, False: 1 - si})
    for name, m in river.items():
        assert v[name] == pytest.approx(m.get(), abs=1e-12), name
    # river's ROCAUC is itself a threshold approximation; both are near the exact AUC.
    assert v["roc_auc"] == pytest.approx(auc.get(), abs=2e-3)


# -- classes -----------------------------------------------------------------------------------


def test_classes_against_river() -> None:
    rng = np.random.default_rng(3)
    names = np.array(["a", "b", "c"])
    t = list(names[rng.integers(0, 3, 2_000)])
    p = [x if rng.random() < 0.7 else str(names[rng.integers(0, 3)]) for x in t]
    v = _values(CLS.evaluate(CLS.update(CLS.empty(), Pairs(t, p))))
    acc, mp, mr, mf = rm.Accuracy(), rm.MacroPrecision(), rm.MacroRecall(), rm.MacroF1()
    for a, b in zip(t, p, strict=True):
        for m in (acc, mp, mr, mf):
            m.update(a, b)
    assert v["accuracy"] == pytest.approx(acc.get(), abs=1e-12)
    assert v["precision"] == pytest.approx(mp.get(), abs=1e-12)
    assert v["recall"] == pytest.approx(mr.get(), abs=1e-12)
    assert v["f1"] == pytest.approx(mf.get(), abs=1e-12)


def test_unlisted_classes_count_for_accuracy_only() -> None:
    state = CLS.update(CLS.empty(), Pairs(["zebra", "yak", "a"], ["zebra", "zebra", "a"]))
    v = _values(CLS.evaluate(state))
    assert v["accuracy"] == pytest.approx(2 / 3)
    assert v["precision"] == 1.0  # only "a" is a listed class seen
    assert state.confusion[-1, -1] == 2


# -- regression --------------------------------------------------------------------------------


def test_regression_against_numpy_and_river() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(10, 3, 4_000)
    y[::50] = 0.0
    p = y + rng.normal(0, 1, y.size)
    v = _values(REG.evaluate(REG.update(REG.empty(), Pairs(y, p))))
    e = y - p
    assert v["mae"] == pytest.approx(np.mean(np.abs(e)), rel=1e-12)
    assert v["rmse"] == pytest.approx(np.sqrt(np.mean(e * e)), rel=1e-12)
    assert v["r2"] == pytest.approx(1 - np.sum(e * e) / np.sum((y - y.mean()) ** 2), rel=1e-10)
    nz = y != 0
    assert v["mape"] == pytest.approx(np.mean(np.abs(e[nz]) / np.abs(y[nz])), rel=1e-12)
    mae, rmse, r2 = rm.MAE(), rm.RMSE(), rm.R2()
    for a, b in zip(y.tolist(), p.tolist(), strict=True):
        for m in (mae, rmse, r2):
            m.update(a, b)
    assert v["mae"] == pytest.approx(mae.get(), rel=1e-9)
    assert v["rmse"] == pytest.approx(rmse.get(), rel=1e-9)
    assert v["r2"] == pytest.approx(r2.get(), rel=1e-9)


def test_regression_skips_non_finite_and_counts_zero_labels() -> None:
    state = REG.update(REG.empty(), Pairs(np.array([0.0, np.nan, 2.0]), np.array([1.0, 1.0, 1.0])))
    assert state.counts.tolist() == [2, 1, 1]
    assert _values(REG.evaluate(state))["mape"] == 0.5


def test_constant_labels_have_no_r2() -> None:
    v = _values(REG.evaluate(REG.update(REG.empty(), Pairs(np.ones(3), np.array([1.0, 2.0, 0.0])))))
    assert "r2" not in v


# -- protocol properties -----------------------------------------------------------------------

pairs = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.integers(0, 1),
        st.floats(0, 1),
        st.floats(-1e3, 1e3),
        st.sampled_from("abcz"),
    ),
    max_size=60,
)
Row = tuple[int, int, float, float, str]


def _feed(sk: LabelSketch, state: LabelState, rows: list[Row]) -> LabelState:
    """Each row is a binary (kind 0), regression (1) or class (2) pair."""
    labels: list[int | float | str] = []
    scores: list[float] = []
    classes: list[str | None] = []
    for kind, y, s, r, c in rows:
        if kind == 0:
            labels.append(y)
            scores.append(s)
            classes.append(None)
        elif kind == 1:
            labels.append(r + 2.5)  # never 0 or 1: regression under task auto
            scores.append(r / 2 + 1)
            classes.append(None)
        else:
            labels.append(c)
            scores.append(math.nan)
            classes.append("a" if y else c)
    return sk.update(state, LabelBatch(labels, np.asarray(scores), classes))


SK = LabelSketch(task="auto", classes=["a", "b", "c"], bins=100)


@settings(max_examples=80, deadline=None)
@given(pairs, st.lists(st.integers(0, 60), max_size=4))
def test_batch_cuts_are_bitwise_identical(rows: list[Row], cuts: list[int]) -> None:
    whole = _feed(SK, SK.empty(), rows)
    bounds = [0, *sorted(min(c, len(rows)) for c in cuts), len(rows)]
    state = SK.empty()
    for lo, hi in itertools.pairwise(bounds):
        state = _feed(SK, state, rows[lo:hi])
    assert state.equals(whole)


@settings(max_examples=80, deadline=None)
@given(pairs, pairs, pairs)
def test_merge_equals_concatenation_and_is_associative(
    a: list[Row], b: list[Row], c: list[Row]
) -> None:
    sa, sb, sc = (_feed(SK, SK.empty(), x) for x in (a, b, c))
    whole = _feed(SK, SK.empty(), a + b + c)
    left = SK.merge(SK.merge(sa, sb), sc)
    right = SK.merge(sa, SK.merge(sb, sc))
    for s in (left, right):
        assert np.array_equal(s.counters, whole.counters)
        assert s.binary.equals(whole.binary)
        assert s.classes.equals(whole.classes)
        assert np.array_equal(s.regression.counts, whole.regression.counts)
        np.testing.assert_allclose(s.regression.sums, whole.regression.sums, rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(
            s.regression.moments, whole.regression.moments, rtol=1e-9, atol=1e-6
        )
    assert SK.merge(sa, SK.empty()).equals(sa)
    assert SK.merge(SK.empty(), sa).equals(sa)


@settings(max_examples=60, deadline=None)
@given(pairs, pairs)
def test_merge_into_equals_merge(a: list[Row], b: list[Row]) -> None:
    sa, sb = _feed(SK, SK.empty(), a), _feed(SK, SK.empty(), b)
    want = SK.merge(sa, sb)
    acc = SK.merge_into(SK.merge_into(SK.empty(), sa), sb)
    assert acc.equals(want)
    assert _feed(SK, SK.empty(), b).equals(sb)  # the argument is left alone


def test_label_state_round_trips() -> None:
    state = _feed(
        SK, SK.empty(), [(0, 1, 0.7, 3.0, "a"), (1, 0, 0.2, -1.0, "b"), (2, 1, 0.9, 0.0, "z")]
    )
    assert LabelState.from_bytes(state.to_bytes()).equals(state)
    with pytest.raises(SketchError):
        LabelState.from_bytes(b"nope")


# -- routing and coverage ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "label", "score", "cls", "where"),
    [
        pytest.param("auto", 1, 0.8, None, "binary", id="auto-binary"),
        pytest.param("auto", "false", 0.8, None, "binary", id="auto-binary-text"),
        pytest.param("auto", 7.5, 6.0, None, "regression", id="auto-regression"),
        pytest.param("auto", "dog", math.nan, "cat", "classes", id="auto-class"),
        pytest.param("regression", 1, 0.8, None, "regression", id="regression-0-1-label"),
        pytest.param("classification", 7.5, 0.8, None, "unusable", id="classification-odd-label"),
        pytest.param("classification", 3, 2.0, None, "classes", id="classification-class-ids"),
        pytest.param("auto", 1, math.nan, None, "unusable", id="no-score"),
    ],
)
def test_routing(task: str, label: object, score: float, cls: str | None, where: str) -> None:
    sk = LabelSketch(task=task, classes=["cat"])  # type: ignore[arg-type]
    s = sk.update(sk.empty(), LabelBatch([label], np.array([score]), [cls]))  # type: ignore[list-item]
    got = {
        "binary": sk.binary.count(s.binary),
        "classes": sk.classes.count(s.classes),
        "regression": sk.regression.count(s.regression),
        "unusable": int(s.counters[1]),
    }
    assert got == {k: int(k == where) for k in got}


_NUMERIC_LABELS = st.one_of(
    st.sampled_from([0, 1, 2, -1, 2**53, 0.0, 1.0, 0.5, -0.0, math.nan, math.inf, -math.inf]),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=True, allow_infinity=True),
)
_SCORES = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5, -0.5, 1.5, 2.0, 3.0, -1.0, math.nan, math.inf, -math.inf]),
    st.floats(-5, 5),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["auto", "classification", "regression"]),
    st.lists(st.tuples(_NUMERIC_LABELS, _SCORES), max_size=40),
)
def test_numeric_batches_route_as_pair_by_pair(task: str, pairs: list[tuple[float, float]]) -> None:
    """The whole-array routing of numeric labels sends every pair where the pair-by-pair
    routing does, or leaves the batch to it (integer class ids compared by name)."""
    sk = LabelSketch(task=task)  # type: ignore[arg-type]
    labels = [label for label, _ in pairs]
    scores = np.array([score for _, score in pairs], dtype=np.float64)
    classes = [None] * len(pairs)
    fast = sk._route_numbers(labels, scores, classes)
    each = sk._route_each(labels, scores, classes)
    if fast is None:
        assert task == "classification"
        assert each[2]  # pairs compared by class name
        return
    b_idx, b_y, c_true, c_pred, r_idx, r_y, unusable = fast
    assert b_idx.tolist() == each[0].tolist()
    assert [int(v) for v in b_y] == list(each[1])
    assert (c_true, c_pred) == (each[2], each[3]) == ([], [])
    assert r_idx.tolist() == each[4].tolist()
    assert [float(v) for v in r_y] == list(each[5])
    assert unusable == each[6]
    a, b = sk.update(sk.empty(), LabelBatch(labels, scores, classes)), sk.empty()
    for i in range(len(pairs)):  # the batch at once equals one pair at a time
        sk.update(b, LabelBatch([labels[i]], scores[i : i + 1], [None]))
    assert a.equals(b)


def test_other_batches_route_pair_by_pair() -> None:
    sk = LabelSketch(task="auto")
    for labels in ([True, 0], ["yes", 1], [1, np.int64(0)]):
        assert sk._route_numbers(labels, np.array([0.5, 0.5]), [None, None]) is None
    assert sk._route_numbers([1], np.array([0.5]), ["cat"]) is None


def test_coverage_and_names() -> None:
    sk = LabelSketch(task="classification")
    s = sk.update(sk.empty(), LabelBatch([1, 0], np.array([0.9, 0.1]), [None, None]))
    v = _values(sk.evaluate(s, Context(predictions=8)))
    assert v["labels_coverage"] == 0.25
    assert set(v) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "labels",
        "labels_coverage",
    }
    assert _values(sk.evaluate(sk.empty(), Context(predictions=0))) == {"labels": 0.0}


@pytest.mark.parametrize(
    "name",
    [
        "drifthouse.detectors.label_sketch",
        "drifthouse.detectors.fairness",
        "drifthouse.detectors.importance",
        "drifthouse.detectors.change",
        "drifthouse.stream.labels.join",
        "drifthouse.stream.labels.stage",
        "drifthouse.stream.metric_events",
    ],
)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


@pytest.mark.parametrize(
    ("task", "classes", "labels", "scores", "expected", "unusable"),
    [
        pytest.param(
            "classification",
            ["bad", "good"],
            ["good", "bad", "good", "bad"],
            [0.9, 0.2, 0.4, 0.6],
            {"accuracy": 0.5, "recall": 0.5, "roc_auc": 0.75},
            0,
            id="class-names",
        ),
        pytest.param(
            "auto",
            ["bad", "good"],
            ["Good", "bad", 1, "false", "spam"],
            [0.9, 0.2, 0.3, 0.1, 0.7],
            {"accuracy": 2 / 3, "recall": 0.0},
            2,
            id="spellings-and-strangers",  # "Good" is not "good": classes keep their case
        ),
        pytest.param(
            "auto",
            ["2", "1"],
            [1, 2, 2.0, 1],
            [0.9, 0.2, 0.3, 0.1],
            {"accuracy": 0.75, "recall": 0.5},
            0,
            id="numeric-class-keys-not-regression",
        ),
        pytest.param(
            "classification",
            ["bad", "good"],
            ["spam"],
            [1.0],
            {},
            1,
            id="stranger-with-integer-score-is-not-a-class-id",
        ),
    ],
)
def test_labels_of_a_two_class_prediction_name_its_classes(
    task: Any, classes: list[str], labels: list[Any], scores: list[float],
    expected: dict[str, float], unusable: int,
) -> None:  # fmt: skip
    """``binary_classes`` (negative, positive) maps a label naming a class to 0/1: the score
    is the positive class's probability (docs/model-performance.md, "Label metrics")."""
    sk = LabelSketch(task=task, binary_classes=classes)
    state = sk.update(sk.empty(), LabelBatch(labels, np.array(scores), [None] * len(labels)))
    got = _values(sk.evaluate(state))
    assert {k: got[k] for k in expected} == pytest.approx(expected)
    assert "mae" not in got
    assert int(state.counters[1]) == unusable
