"""Write NannyML's own data reconstruction drift on its car loan dataset to a test fixture.

NannyML is not a dependency of drifthouse: run this in a venv of its own, e.g.

    python -m venv /tmp/nml && /tmp/nml/bin/pip install nannyml
    /tmp/nml/bin/python scripts/nannyml_reconstruction_fixture.py tests/detectors/data

It writes ``nannyml_reconstruction.npz`` (the dataset's seven features, reference then analysis,
as the integers they are stored in: ``debt_to_income_ratio`` and ``driver_tenure`` rounded to
four decimals, categories as indexes into the JSON's lists) and ``nannyml_reconstruction.json``:
per chunk of 5,000 events, reference and analysis, NannyML's ``reconstruction_error``, sampling
error and thresholds, and the PCA it fitted (components kept, variance explained), plus the
error of the first reference rows. NannyML is run on the rounded values, so both sides see the
same data. ``tests/detectors/test_multivariate_nannyml.py`` and
``tests/test_cli_multivariate.py`` compare drifthouse with it (docs/statistics.md,
"Multivariate drift").
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
NUMERIC = ["car_value", "debt_to_income_ratio", "loan_length", "driver_tenure"]
DECIMALS = {"car_value": 0, "debt_to_income_ratio": 4, "loan_length": 0, "driver_tenure": 4}
CATEGORICAL = ["salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"]
FEATURES = [
    "car_value",
    "salary_range",
    "debt_to_income_ratio",
    "loan_length",
    "repaid_loan_on_prev_car",
    "size_of_downpayment",
    "driver_tenure",
]
HEAD = 20  # reference rows whose own error is written


def _rounded(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in NUMERIC:
        out[c] = out[c].round(DECIMALS[c])
    out["repaid_loan_on_prev_car"] = out["repaid_loan_on_prev_car"].map(
        {True: "true", False: "false"}
    )
    return out


def main(out: Path) -> None:
    ref, ana, _ = nml.load_synthetic_car_loan_dataset()
    ref, ana = _rounded(ref), _rounded(ana)
    calc = nml.DataReconstructionDriftCalculator(column_names=FEATURES, chunk_size=CHUNK).fit(ref)
    frame = calc.calculate(ana).filter(period="all").to_df()
    n_ref = len(ref)
    chunks = []
    for _, row in frame.iterrows():
        period = row[("chunk", "period")]
        offset = 0 if period == "reference" else n_ref
        chunks.append(
            {
                "period": period,
                "start": int(row[("chunk", "start_index")]) + offset,
                "end": int(row[("chunk", "end_index")]) + 1 + offset,
                "value": float(row[("reconstruction_error", "value")]),
                "sampling_error": float(row[("reconstruction_error", "sampling_error")]),
                "upper_threshold": float(row[("reconstruction_error", "upper_threshold")]),
                "lower_threshold": None
                if pd.isna(row[("reconstruction_error", "lower_threshold")])
                else float(row[("reconstruction_error", "lower_threshold")]),
                "alert": bool(row[("reconstruction_error", "alert")]),
            }
        )
    # Per-row errors of the first reference rows, with NannyML's own fitted transformers.
    head = ref.iloc[:HEAD][FEATURES].copy()
    data = calc._scaler.transform(calc._encoder.transform(head).to_numpy())
    back = calc._pca.inverse_transform(calc._pca.transform(data))
    row_errors = np.linalg.norm(data - back, axis=1)

    both = pd.concat([ref, ana], ignore_index=True)
    categories = {c: sorted(both[c].astype(str).unique()) for c in CATEGORICAL}
    arrays: dict[str, np.ndarray] = {}
    for c in NUMERIC:
        arrays[c] = np.rint(both[c].to_numpy() * 10 ** DECIMALS[c]).astype(np.int64)
    for c in CATEGORICAL:
        code = {v: i for i, v in enumerate(categories[c])}
        arrays[c] = both[c].astype(str).map(code).to_numpy().astype(np.uint8)
    np.savez_compressed(out / "nannyml_reconstruction.npz", **arrays)
    doc = {
        "nannyml": nml.__version__,
        "chunk_size": CHUNK,
        "reference_events": n_ref,
        "features": FEATURES,
        "decimals": DECIMALS,
        "categories": categories,
        "n_components": int(calc._pca.n_components_),
        "explained_variance_ratio": float(np.sum(calc._pca.explained_variance_ratio_)),
        "lower_threshold": calc.lower_threshold_value,
        "upper_threshold": calc.upper_threshold_value,
        "reference_row_errors": [float(e) for e in row_errors],
        "chunks": chunks,
    }
    (out / "nannyml_reconstruction.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
