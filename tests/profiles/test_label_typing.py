"""How a reference's label column is typed (docs/statistics.md, "Reference profiles", and
docs/model-performance.md, "Label metrics"): a stray text cell in numeric labels is left out
and reported, not a reason to score a regression model as a classifier; labels of a
``{class: probability}`` prediction are that prediction's classes, however they are spelled.

The data are generated here: a car-price regression, a three-class model sending class ids
with probabilities, and a two-class model sending ``{"bad": 1 - p, "good": p}``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drifthouse.detectors.labels import binary_metrics, regression_metrics
from drifthouse.detectors.reference import Profile
from drifthouse.errors import ProfileError
from drifthouse.profiles.build import build_profile_from_file

N = 500
ODD_ROW = 4


def _profile(path: Path, **kw: Any) -> Profile:
    return build_profile_from_file(
        path, model="m", model_version="1", created_at="2026-01-01T00:00:00Z", **kw
    )


def regression_rows(n: int = N, seed: int = 1) -> list[dict[str, Any]]:
    """Car prices: two numeric features, one categorical, a label and a noisy prediction."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        age, km = int(rng.integers(0, 16)), float(rng.integers(0, 200_000))
        fuel = ["diesel", "electric", "petrol"][int(rng.integers(0, 3))]
        y = round(20_000 - 900 * age - km / 40 + (3_000 if fuel == "electric" else 0), 1)
        rows.append(
            {
                "i": i,
                "age": age,
                "km": km,
                "fuel": fuel,
                "y": y,
                "p": round(y + rng.normal(0, 900), 1),
            }
        )
    return rows


def _write_regression(path: Path, rows: list[dict[str, Any]], odd: object) -> Path:
    if path.suffix == ".csv":
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["age", "km", "fuel", "y_true", "y_pred", "timestamp"])
            for r in rows:
                y = odd if r["i"] == ODD_ROW else r["y"]
                w.writerow([r["age"], r["km"], r["fuel"], y, r["p"], 1_700_000_000_000 + r["i"]])
        return path
    with path.open("w") as fh:
        for r in rows:
            event = {
                "model": "m",
                "ts": 1_700_000_000_000 + r["i"],
                "event_id": f"r{r['i']}",
                "features": {"age": r["age"], "km": r["km"], "fuel": r["fuel"]},
                "prediction": r["p"],
                "label": odd if r["i"] == ODD_ROW else r["y"],
            }
            fh.write(json.dumps(event) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_stray_text_label_leaves_a_regression_reference_numeric(
    tmp_path: Path, suffix: str
) -> None:
    """One ``?`` among 500 price labels: the reference stays a regression (its mae over the
    499 numbers, its loss model), and the ``?`` is counted with an example."""
    rows = regression_rows()
    path = _write_regression(tmp_path / f"ref{suffix}", rows, "?")
    kw = {"prediction": "y_pred", "label": "y_true"} if suffix == ".csv" else {}
    profile = _profile(path, **kw)
    b = profile.baselines
    assert b.task == "regression"
    kept = [r for r in rows if r["i"] != ODD_ROW]
    expected = regression_metrics(
        y_true=np.array([r["y"] for r in kept]), y_pred=np.array([r["p"] for r in kept])
    )
    assert b.labels == pytest.approx(expected, rel=1e-12)
    assert (b.label_type_error, b.label_type_error_examples) == (1, ["?"])
    assert profile.loss_model is not None
    assert profile.loss_model.events == N - 1
    assert profile.calibration is None


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_an_empty_label_cell_is_missing_not_an_error(tmp_path: Path, suffix: str) -> None:
    odd = "" if suffix == ".csv" else None
    path = _write_regression(tmp_path / f"ref{suffix}", regression_rows(), odd)
    kw = {"prediction": "y_pred", "label": "y_true"} if suffix == ".csv" else {}
    b = _profile(path, **kw).baselines
    assert (b.task, b.label_type_error, b.label_type_error_examples) == ("regression", 0, [])


def test_labels_that_are_mostly_text_are_classes(tmp_path: Path) -> None:
    """Below the 95% share the labels are class names, as a feature would be categories."""
    path = tmp_path / "ref.jsonl"
    with path.open("w") as fh:
        for i in range(100):
            label = ["cat", "dog"][i % 2] if i % 10 else i  # 10% numbers
            pred = ["cat", "dog"][i % 2]
            fh.write(json.dumps({"model": "m", "ts": i, "features": {"x": i}, "prediction": pred, "label": label}) + "\n")  # fmt: skip
    b = _profile(path).baselines
    assert (b.task, b.label_type_error) == ("classification", 0)
    assert b.labels == {"accuracy": 0.9}


def multiclass_rows(n: int = N, seed: int = 2, *, spell: bool = False) -> list[dict[str, Any]]:
    """A three-class model sending ``{"0": p0, "1": p1, "2": p2}`` and the integer class it
    served; the label is an integer class id (``spell``: sometimes ``"2.0"`` or ``1.0``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        truth = int(rng.integers(0, 3))
        probs = rng.dirichlet([1.0, 1.0, 1.0])
        probs[truth] += 1.5 if rng.random() < 0.8 else 0.0
        probs = np.round(probs / probs.sum(), 3)
        served = int(np.argmax(probs))
        label: object = truth
        if spell and i % 7 == 0:
            label = f"{truth}.0"
        elif spell and i % 11 == 0:
            label = float(truth)
        rows.append(
            {
                "model": "m",
                "ts": 1_700_000_000_000 + i * 1_000,
                "event_id": f"e{i}",
                "features": {"x": float(probs[0]), "channel": ["web", "app"][i % 2]},
                "prediction": {str(k): float(probs[k]) for k in range(3)},
                "predicted_class": served,
                "label": label,
                "_truth": truth,
                "_served": served,
            }
        )
    return rows


def _write_events(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w") as fh:
        for r in rows:
            fh.write(json.dumps({k: v for k, v in r.items() if not k.startswith("_")}) + "\n")
    return path


@pytest.mark.parametrize("spell", [False, True], ids=["integers", "mixed-spellings"])
def test_class_id_labels_of_a_probability_dict_are_its_classes(tmp_path: Path, spell: bool) -> None:
    """Integer labels beside ``{class: probability}`` with three classes: a classifier, its
    accuracy counted on the served class (``1``, ``1.0``, ``"1.0"`` name one class), and a
    multiclass calibration."""
    rows = multiclass_rows(spell=spell)
    profile = _profile(_write_events(tmp_path / "ref.jsonl", rows))
    b = profile.baselines
    assert b.task == "classification"
    accuracy = float(np.mean([r["_truth"] == r["_served"] for r in rows]))
    assert 0.6 < accuracy < 0.95
    assert b.labels["accuracy"] == accuracy
    assert "mae" not in b.labels
    assert profile.calibration is not None
    assert profile.calibration.classes == ["0", "1", "2"]
    assert b.label_type_error == 0


def binary_rows(
    n: int = N, seed: int = 3, keys: tuple[str, str] = ("bad", "good")
) -> list[dict[str, Any]]:
    """A two-class model sending ``{"bad": 1 - p, "good": p}`` and labels ``"good"``/``"bad"``."""
    rng = np.random.default_rng(seed)
    neg, pos = keys
    rows = []
    for i in range(n):
        truth = int(rng.random() < 0.6)
        p = float(np.clip(rng.normal(0.75 if truth else 0.25, 0.2), 0.0, 1.0).round(2))
        rows.append(
            {
                "model": "m",
                "ts": 1_700_000_000_000 + i * 1_000,
                "event_id": f"e{i}",
                "features": {"x": p, "channel": ["web", "app"][i % 2]},
                "prediction": {neg: round(1.0 - p, 2), pos: p},
                "label": pos if truth else neg,
                "_truth": truth,
                "_score": p,
            }
        )
    return rows


def test_class_name_labels_of_a_two_class_dict_are_its_classes(tmp_path: Path) -> None:
    """``"good"``/``"bad"`` labels of ``{"bad": 1 - p, "good": p}``: binary metrics of the
    score of ``good`` (the positive class: the last by name), and a binary calibration."""
    rows = binary_rows()
    profile = _profile(_write_events(tmp_path / "ref.jsonl", rows))
    b = profile.baselines
    assert b.task == "classification"
    expected = binary_metrics(
        y_true=np.array([r["_truth"] == 1 for r in rows]),
        score=np.array([r["_score"] for r in rows]),
    )
    assert b.labels == pytest.approx(expected, rel=1e-12)
    assert b.labels["accuracy"] > 0.8
    assert b.binary_classes == ["bad", "good"]
    assert profile.calibration is not None
    assert profile.calibration.classes == []


def test_labels_matching_no_class_of_a_two_class_dict_are_refused(tmp_path: Path) -> None:
    rows = binary_rows()
    for r in rows:
        r["label"] = "approved" if r["_truth"] else "declined"
    with pytest.raises(
        ProfileError,
        match=r"labels must name a class of the prediction \(\"bad\", \"good\"\) or be 0/1.*"
        r"500 of 500 labels match neither \(the first in row 1\), got "
        r"\"(declined|approved)\", \"(declined|approved)\"; fix the label field",
    ):
        _profile(_write_events(tmp_path / "ref.jsonl", rows))


def test_a_few_labels_matching_no_class_are_left_out_and_reported(tmp_path: Path) -> None:
    rows = binary_rows()
    rows[9]["label"] = "unknown"
    profile = _profile(_write_events(tmp_path / "ref.jsonl", rows))
    b = profile.baselines
    kept = [r for i, r in enumerate(rows) if i != 9]
    expected = binary_metrics(
        y_true=np.array([r["_truth"] == 1 for r in kept]),
        score=np.array([r["_score"] for r in kept]),
    )
    assert b.labels == pytest.approx(expected, rel=1e-12)
    assert (b.label_type_error, b.label_type_error_examples) == (1, ["unknown"])


def test_columns_given_as_arrays_are_typed_alike() -> None:
    """``build_profile`` with an integer label array and class-name predictions: classes."""
    from drifthouse.config import MetricsConfig
    from drifthouse.profiles.columns import build_profile

    truth = np.arange(300) % 3
    served = np.where(np.arange(300) % 4 == 0, (truth + 1) % 3, truth)
    profile = build_profile(
        model="m", model_version="1", created_at="2026-01-01T00:00:00Z", source_digest="0" * 64,
        settings=MetricsConfig(), features={"x": np.arange(300.0)},
        prediction=[str(c) for c in served], label=truth,
    )  # fmt: skip
    assert profile.baselines.task == "classification"
    assert profile.baselines.labels["accuracy"] == 0.75
