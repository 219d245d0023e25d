"""Label values a model's metrics cannot use are counted (``labels_unusable``), never absorbed
silently; a numeric string label is its number (docs/model-performance.md, "Label metrics").

Each case against a naive NumPy twin: the metrics of the usable pairs only, and
``labels = pairs the metrics use + labels_unusable``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.detectors.base import Context
from drifthouse.detectors.label_sketch import LabelBatch, LabelSketch, label_number
from drifthouse.detectors.labels import binary_metrics, reference_metrics, regression_metrics


def _values(sk: LabelSketch, labels: list[object], scores: np.ndarray) -> dict[str, float]:
    s = sk.update(sk.empty(), LabelBatch(labels, scores, [None] * len(labels)))  # type: ignore[arg-type]
    return {r.metric: r.value for r in sk.evaluate(s, Context(predictions=len(labels)))}


def _regression_case(n: int, seed: int) -> tuple[list[object], np.ndarray]:
    """Car prices with 1% ``"?"``, 1% ``""`` and 1% numeric strings, as a tester's file had."""
    rng = np.random.default_rng(seed)
    y = np.round(rng.uniform(1_000, 9_000, n))
    p = y + rng.normal(0, 300, n)
    labels: list[object] = [float(v) for v in y]
    for i in range(0, n, 100):
        labels[i + 1], labels[i + 2], labels[i + 3] = "?", "", f"{y[i + 3]:.1f}"
    return labels, p


@pytest.mark.parametrize("task", ["regression", "auto"])
def test_regression_takes_numeric_strings_and_counts_the_rest(task: str) -> None:
    labels, p = _regression_case(5_000, 1)
    got = _values(LabelSketch(task=task), labels, p)  # type: ignore[arg-type]
    usable = [i for i, v in enumerate(labels) if v not in ("?", "")]
    y = np.array([float(labels[i]) for i in usable])  # type: ignore[arg-type]
    naive = regression_metrics(y_true=y, y_pred=p[usable])
    for metric in ("mae", "rmse", "r2", "mape"):
        assert got[metric] == pytest.approx(naive[metric], rel=1e-12), metric
    assert got["labels_unusable"] == 100  # 50 "?" and 50 ""
    assert got["labels"] == len(usable) + got["labels_unusable"] == 5_000


def test_binary_counts_labels_outside_its_classes() -> None:
    rng = np.random.default_rng(2)
    n = 2_000
    score = rng.uniform(size=n)
    y = (rng.uniform(size=n) < score).astype(int)
    labels: list[object] = [int(v) for v in y]
    for i in range(0, n, 100):
        labels[i], labels[i + 1] = "?", 2
    got = _values(LabelSketch(task="classification"), labels, score)
    usable = np.array([v in (0, 1) for v in labels])
    naive = binary_metrics(y_true=y[usable] == 1, score=score[usable])
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert got[metric] == pytest.approx(naive[metric], abs=1e-12), metric
    assert got["roc_auc"] == pytest.approx(naive["roc_auc"], abs=1e-3)  # binned
    assert got["labels_unusable"] == 40
    assert got["labels"] == n


def test_binary_leaves_out_scores_outside_0_1() -> None:
    """A score that is no probability (87.0: a percentage) is no decision at the threshold:
    left out of the realized metrics as CBPE leaves it out of the estimates."""
    rng = np.random.default_rng(3)
    n = 1_000
    score = rng.uniform(size=n)
    y = (rng.uniform(size=n) < score).astype(int)
    sent = score.copy()
    sent[::5] = np.round(score[::5] * 100)  # 20% as percentages
    sent[1] = 1.5
    got = _values(LabelSketch(task="classification"), [int(v) for v in y], sent)
    usable = (sent >= 0) & (sent <= 1)
    naive = binary_metrics(y_true=y[usable] == 1, score=sent[usable])
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert got[metric] == pytest.approx(naive[metric], abs=1e-12), metric
    assert got["labels_unusable"] == n - int(usable.sum())
    assert got["labels"] == n


def test_no_unusable_row_when_every_label_is_used() -> None:
    got = _values(LabelSketch(task="classification"), [1, 0], np.array([0.9, 0.2]))
    assert "labels_unusable" not in got
    assert got["labels"] == 2


@pytest.mark.parametrize(
    ("value", "number"),
    [
        pytest.param(3, 3.0, id="int"),
        pytest.param(2.5, 2.5, id="float"),
        pytest.param("2973.0", 2973.0, id="numeral"),
        pytest.param("-1.5e3", -1500.0, id="exponent"),
        pytest.param("01", None, id="leading-zero-code"),
        pytest.param(" 3", None, id="space"),
        pytest.param("?", None, id="question-mark"),
        pytest.param("", None, id="empty"),
        pytest.param("nan", None, id="nan-text"),
        pytest.param("1e999", None, id="overflow"),
        pytest.param(True, None, id="bool"),
        pytest.param(math.inf, None, id="inf"),
    ],
)
def test_label_number(value: object, number: float | None) -> None:
    assert label_number(value) == number


_LABELS = st.one_of(
    st.sampled_from([0, 1, 2, "?", "", "1", "0", "2.5", "yes", "01", True, 7.5, -3]),
    st.floats(-10, 10),
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["auto", "classification", "regression"]),
    st.lists(st.tuples(_LABELS, st.floats(-2, 120)), max_size=40),
)
def test_labels_are_the_used_pairs_plus_the_unusable(
    task: str, pairs: list[tuple[object, float]]
) -> None:
    sk = LabelSketch(task=task)  # type: ignore[arg-type]
    labels = [label for label, _ in pairs]
    scores = np.array([s for _, s in pairs], dtype=np.float64)
    state = sk.update(sk.empty(), LabelBatch(labels, scores, [None] * len(pairs)))  # type: ignore[arg-type]
    got = {r.metric: r.value for r in sk.evaluate(state)}
    binary, classes = sk.binary.count(state.binary), sk.classes.count(state.classes)
    used = (binary or classes) + sk.regression.count(state.regression)
    assert got["labels"] == len(pairs) == used + got.get("labels_unusable", 0)


def test_a_reference_reads_numeric_string_labels_as_the_stream_does() -> None:
    """A reference whose labels include numerals sent as text is a regression reference, with
    the metrics of the numbers they denote (as the windows score them)."""
    labels, p = _regression_case(1_000, 4)
    usable = [i for i, v in enumerate(labels) if v not in ("?", "")]
    sent = [labels[i] for i in usable]
    task, got = reference_metrics(y_true=sent, y_pred=list(p[usable]))
    y = np.array([float(v) for v in sent])  # type: ignore[arg-type]
    assert task == "regression"
    assert got == pytest.approx(regression_metrics(y_true=y, y_pred=p[usable]), rel=1e-12)
