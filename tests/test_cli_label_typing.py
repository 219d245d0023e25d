"""What a replay writes once the profile has typed its labels (docs/model-performance.md,
"Label metrics"): ``drifthouse profile`` of a generated labelled reference, ``drifthouse
replay`` of 400 later predictions with their labels in two one-hour windows, and the stored
label metrics read back with ``drifthouse sql``, against the same figures computed here.

- a regression reference with one ``?`` label: ``mae``/``rmse`` and ``estimated_mae``, no
  ``accuracy``;
- a three-class ``{class: probability}`` model with integer labels: ``accuracy`` of the
  served class and ``estimated_accuracy``;
- a ``{"bad": 1 - p, "good": p}`` model with ``"good"``/``"bad"`` labels: binary metrics of
  the score of ``good`` and ``estimated_accuracy``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drifthouse.detectors.labels import binary_metrics, regression_metrics
from tests.cli_process import replay_labelled, run_cli
from tests.profiles.test_label_typing import (
    ODD_ROW,
    binary_rows,
    multiclass_rows,
    regression_rows,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP = 18_000  # 200 events an hour
HOUR = 3_600_000
N_CUR = 400


def _regression_events(seed: int, odd: bool) -> list[dict[str, Any]]:
    return [
        {
            "model": "m",
            "features": {"age": r["age"], "km": r["km"], "fuel": r["fuel"]},
            "prediction": r["p"],
            "label": "?" if odd and r["i"] == ODD_ROW else r["y"],
        }
        for r in regression_rows(seed=seed)
    ]


def _cases(kind: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Reference events and current events (each with its ``label``)."""
    if kind == "regression":
        return _regression_events(1, odd=True), _regression_events(11, odd=False)[:N_CUR]
    make = multiclass_rows if kind == "multiclass" else binary_rows
    return make(seed=2), make(seed=12)[:N_CUR]


def _macro(truth: list[int], served: list[int]) -> dict[str, float]:
    """Accuracy and macro precision, recall and F1 over the classes seen (as river's
    ``MacroPrecision``: a class with no prediction has precision 0)."""
    t, p = np.array(truth), np.array(served)
    prec, rec, f1 = [], [], []
    for c in sorted(set(truth) | set(served)):
        tp = int(np.sum((t == c) & (p == c)))
        pr = tp / int(np.sum(p == c)) if np.any(p == c) else 0.0
        rc = tp / int(np.sum(t == c)) if np.any(t == c) else 0.0
        prec.append(pr)
        rec.append(rc)
        f1.append(2 * pr * rc / (pr + rc) if pr + rc else 0.0)
    return {
        "accuracy": float(np.mean(t == p)),
        "precision": float(np.mean(prec)),
        "recall": float(np.mean(rec)),
        "f1": float(np.mean(f1)),
    }


def _expected(kind: str, current: list[dict[str, Any]]) -> list[dict[str, float]]:
    """The label metrics of each one-hour window of ``current``."""
    out = []
    for w in range(N_CUR * STEP // HOUR):
        rows = current[w * HOUR // STEP : (w + 1) * HOUR // STEP]
        if kind == "regression":
            out.append(
                regression_metrics(
                    y_true=np.array([r["label"] for r in rows]),
                    y_pred=np.array([r["prediction"] for r in rows]),
                )
            )
        elif kind == "multiclass":
            out.append(_macro([r["_truth"] for r in rows], [r["_served"] for r in rows]))
        else:
            out.append(
                binary_metrics(
                    y_true=np.array([r["_truth"] == 1 for r in rows]),
                    score=np.array([r["_score"] for r in rows]),
                )
            )
    return out


def _write(tmp: Path, kind: str) -> list[dict[str, Any]]:
    reference, current = _cases(kind)
    public = lambda e: {k: v for k, v in e.items() if not k.startswith("_")}  # noqa: E731
    with (tmp / "reference.jsonl").open("w") as fh:
        for i, e in enumerate(reference):
            fh.write(json.dumps(public(e) | {"ts": T0 - HOUR * 24 + i, "event_id": f"r{i}"}))
            fh.write("\n")
    with (tmp / "predictions.jsonl").open("w") as preds, (tmp / "labels.jsonl").open("w") as labs:
        for i, e in enumerate(current):
            ts = T0 + i * STEP
            event = {k: v for k, v in public(e).items() if k != "label"}
            preds.write(json.dumps(event | {"ts": ts, "event_id": f"a{i}"}) + "\n")
            label = {"event_id": f"a{i}", "model": "m", "ts": ts + 60_000, "label": e["label"]}
            labs.write(json.dumps(label) + "\n")
    return current


@pytest.mark.parametrize("kind", ["regression", "multiclass", "two-class"])
def test_replay_scores_the_labels_the_profile_typed(tmp_path: Path, kind: str) -> None:
    current = _write(tmp_path, kind)
    done = run_cli(
        "profile", str(tmp_path / "reference.jsonl"), "--model", "m", "--out", "m.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    query = (
        "SELECT toUnixTimestamp64Milli(window_start) AS ws, metric, value FROM metrics FINAL "
        "WHERE model = 'm' AND segment = '' AND feature = '' AND metric IN ('accuracy', "
        "'precision', 'recall', 'f1', 'roc_auc', 'mae', 'rmse', 'r2', 'mape', "
        "'estimated_accuracy', 'estimated_mae') ORDER BY ws, metric"
    )
    rows = replay_labelled(tmp_path, tmp_path / "drifthouse.yaml", "auto", query)
    got: dict[int, dict[str, float]] = {}
    for r in rows:
        got.setdefault(int(str(r["ws"])), {})[str(r["metric"])] = float(str(r["value"]))
    expected = _expected(kind, current)
    assert sorted(got) == [T0 + w * HOUR for w in range(len(expected))]
    for w, want in enumerate(expected):
        values = got[T0 + w * HOUR]
        estimated = "estimated_mae" if kind == "regression" else "estimated_accuracy"
        assert estimated in values, (w, values)
        written = {k: v for k, v in values.items() if not k.startswith("estimated_")}
        assert written == pytest.approx(want, rel=1e-9, abs=1e-12), w


def test_profile_says_which_labels_it_left_out(tmp_path: Path) -> None:
    """The ``?`` label is named in ``drifthouse profile``'s output, with the task it kept."""
    reference, _ = _cases("regression")
    with (tmp_path / "reference.jsonl").open("w") as fh:
        for i, e in enumerate(reference):
            fh.write(json.dumps(e | {"ts": T0 + i, "event_id": f"r{i}"}) + "\n")
    done = run_cli(
        "profile", str(tmp_path / "reference.jsonl"), "--model", "m", "--out", "m.json",
        cwd=tmp_path, columns=200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert (
        "labels: regression; 1 label of 500 is not a number (0.200%), left out of the label "
        'baselines: "?"'
    ) in said


def test_profile_refuses_labels_of_no_class(tmp_path: Path) -> None:
    rows = binary_rows()
    with (tmp_path / "reference.jsonl").open("w") as fh:
        for i, r in enumerate(rows):
            event = {k: v for k, v in r.items() if not k.startswith("_")}
            fh.write(json.dumps(event | {"label": "approved" if i % 2 else "declined"}) + "\n")
    done = run_cli(
        "profile", str(tmp_path / "reference.jsonl"), "--model", "m", "--out", "m.json",
        cwd=tmp_path, columns=200,
    )  # fmt: skip
    assert done.returncode != 0
    said = " ".join(done.stderr.split())
    assert 'labels must name a class of the prediction ("bad", "good") or be 0/1' in said
    assert not (tmp_path / "m.json").exists()
