"""Write NannyML's own direct loss estimation (DLE) on its bundled car price dataset to a test
fixture.

NannyML is not a dependency of drifthouse: run this in a venv of its own, e.g.

    python -m venv /tmp/nml && /tmp/nml/bin/pip install nannyml
    /tmp/nml/bin/python scripts/nannyml_dle_fixture.py tests/detectors/data

It writes ``nannyml_dle.npz`` (the dataset's reference then analysis rows: the five numeric
features as float32, ``fuel`` and ``transmission`` as codes into the category lists of the
JSON, ``y_pred`` and ``y_true``, all whole numbers in the dataset) and ``nannyml_dle.json``
(per chunk of 6,000 events, reference and analysis, NannyML's estimated value, sampling error
and realized value of MAE and RMSE). ``tests/detectors/test_dle_nannyml.py`` compares
drifthouse with it (docs/model-performance.md, "Regression without labels").
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

# NannyML 0.13.1's DLE reshapes category columns, which pandas 3's Arrow strings refuse.
if pd.__version__ >= "3":
    pd.set_option("future.infer_string", False)

CHUNK = 6000
METRICS = ["mae", "rmse"]
NUMERIC = ["car_age", "km_driven", "price_new", "accident_count", "door_count"]
CATEGORICAL = ["fuel", "transmission"]


def main(out: Path) -> None:
    ref, ana, tgt = nml.load_synthetic_car_price_dataset()
    ana = ana.merge(tgt, on="id")
    est = nml.DLE(
        feature_column_names=NUMERIC + CATEGORICAL,
        y_pred="y_pred",
        y_true="y_true",
        timestamp_column_name="timestamp",
        metrics=METRICS,
        chunk_size=CHUNK,
    ).fit(ref)
    frame = est.estimate(ana).filter(period="all").to_df()
    chunks = []
    for _, row in frame.iterrows():
        period = row[("chunk", "period")]
        offset = 0 if period == "reference" else len(ref)
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
        chunks.append(rec)
    both = pd.concat([ref, ana], ignore_index=True)
    categories = {c: sorted(both[c].unique().tolist()) for c in CATEGORICAL}
    arrays = {
        "numeric": both[NUMERIC].to_numpy().astype(np.float32),
        "codes": np.column_stack(
            [both[c].map({v: i for i, v in enumerate(categories[c])}) for c in CATEGORICAL]
        ).astype(np.uint8),
        "y_pred": both["y_pred"].to_numpy().astype(np.float32),
        "y_true": both["y_true"].to_numpy().astype(np.float32),
    }
    for name in ("numeric", "y_pred", "y_true"):  # whole numbers: float32 holds them exactly
        assert np.array_equal(arrays[name], np.rint(arrays[name]))
    np.savez_compressed(out / "nannyml_dle.npz", **arrays)
    doc = {
        "nannyml": nml.__version__,
        "chunk_size": CHUNK,
        "reference_events": len(ref),
        "numeric": NUMERIC,
        "categorical": categories,
        "chunks": chunks,
    }
    (out / "nannyml_dle.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
