"""Write NannyML's own CBPE estimates on its bundled datasets to a test fixture.

NannyML is not a dependency of drifthouse: run this in a venv of its own, e.g.

    python -m venv /tmp/nml && /tmp/nml/bin/pip install nannyml statsmodels
    /tmp/nml/bin/python scripts/nannyml_fixture.py tests/detectors/data

It writes ``nannyml_cbpe.npz`` (the datasets' scores, predictions and labels, as the integer
percents NannyML ships them in) and ``nannyml_cbpe.json`` (per chunk of 5,000 events, reference
and analysis, NannyML's estimated, sampling error and realized value of each metric, and whether
it calibrated each class). ``tests/detectors/test_cbpe_nannyml.py`` compares drifthouse with it
(docs/model-performance.md, "Checked against NannyML").

The binary dataset's ``y_pred`` was thresholded before its scores were rounded to two decimals
(112 reference rows at 0.48 or 0.49 say 1): the fixture sets ``y_pred = y_pred_proba >= 0.5``,
drifthouse's rule, so both sides estimate from the same predictions.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # NannyML reports usage online otherwise

import nannyml as nml
import numpy as np
import pandas as pd

CHUNK = 5000
METRICS = ["roc_auc", "f1", "precision", "recall", "accuracy"]


def _chunks(est: object, n_ref: int) -> list[dict[str, object]]:
    """Each chunk's rows in the reference-then-analysis order of the npz file (NannyML counts
    each period's rows from 0)."""
    frame = est.estimate(_ANALYSIS).filter(period="all").to_df()  # type: ignore[attr-defined]
    out = []
    for _, row in frame.iterrows():
        period = row[("chunk", "period")]
        offset = 0 if period == "reference" else n_ref
        rec: dict[str, object] = {
            "period": period,
            "start": int(row[("chunk", "start_index")]) + offset,
            "end": int(row[("chunk", "end_index")]) + 1 + offset,
        }
        for m in METRICS:
            rec[m] = {
                "value": float(row[(m, "value")]),
                "sampling_error": float(row[(m, "sampling_error")]),
                "realized": float(row[(m, "realized")]),
            }
        out.append(rec)
    return out


def binary() -> tuple[dict[str, np.ndarray], dict[str, object]]:
    global _ANALYSIS
    ref, ana, tgt = nml.load_synthetic_binary_classification_dataset()
    ana = ana.merge(tgt, on="id")
    for df in (ref, ana):
        df["y_pred"] = (df["y_pred_proba"] >= 0.5).astype(int)
    _ANALYSIS = ana
    est = nml.CBPE(
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true="work_home_actual",
        metrics=METRICS,
        chunk_size=CHUNK,
        problem_type="classification_binary",
    ).fit(ref)
    both = pd.concat([ref, ana], ignore_index=True)
    arrays = {
        "binary_score": np.rint(both["y_pred_proba"].to_numpy() * 100).astype(np.uint8),
        "binary_label": both["work_home_actual"].to_numpy().astype(np.uint8),
    }
    return arrays, {
        "reference_events": len(ref),
        "needs_calibration": bool(est.needs_calibration),
        "chunks": _chunks(est, len(ref)),
    }


def multiclass() -> tuple[dict[str, np.ndarray], dict[str, object]]:
    global _ANALYSIS
    ref, ana, tgt = nml.load_synthetic_multiclass_classification_dataset()
    ana = ana.merge(tgt, on="id")
    _ANALYSIS = ana
    classes = sorted(["prepaid_card", "highstreet_card", "upmarket_card"])
    proba = {c: f"y_pred_proba_{c}" for c in classes}
    est = nml.CBPE(
        y_pred_proba=proba,
        y_pred="y_pred",
        y_true="y_true",
        metrics=METRICS,
        chunk_size=CHUNK,
        problem_type="classification_multiclass",
    ).fit(ref)
    both = pd.concat([ref, ana], ignore_index=True)
    code = {c: i for i, c in enumerate(classes)}
    arrays = {
        "multiclass_score": np.rint(both[[proba[c] for c in classes]].to_numpy() * 100).astype(
            np.uint8
        ),
        "multiclass_pred": both["y_pred"].map(code).to_numpy().astype(np.uint8),
        "multiclass_label": both["y_true"].map(code).to_numpy().astype(np.uint8),
    }
    calibrated = {c: type(est._calibrators[c]).__name__ != "NoopCalibrator" for c in classes}
    return arrays, {
        "reference_events": len(ref),
        "classes": classes,
        "needs_calibration": calibrated,
        "chunks": _chunks(est, len(ref)),
    }


_ANALYSIS: pd.DataFrame


def main(out: Path) -> None:
    a1, r1 = binary()
    a2, r2 = multiclass()
    np.savez_compressed(out / "nannyml_cbpe.npz", **a1, **a2)
    doc = {"nannyml": nml.__version__, "chunk_size": CHUNK, "binary": r1, "multiclass": r2}
    (out / "nannyml_cbpe.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
