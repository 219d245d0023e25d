"""drifthouse's direct loss estimation (DLE) against NannyML's own on NannyML's bundled car
price dataset.

The fixture (``tests/detectors/data/nannyml_dle.*``) is written by
``scripts/nannyml_dle_fixture.py`` in a venv with NannyML (not a dependency of drifthouse): the
dataset's features, predictions and labels, and NannyML 0.13.1's per-chunk estimates (chunks of
6,000 events over reference and analysis). The profile is built from the reference as
``drifthouse profile`` builds it; each chunk is one window.

NannyML fits LightGBM on the reference; drifthouse an additive model on the profile's grids
with pairwise terms (:mod:`drifthouse.detectors.dle_fit`), so the figures differ, and the test
states by how much, in NannyML's sampling errors of each chunk (docs/model-performance.md,
"Regression without labels"): MAE within 1.0 of NannyML's estimate and 3.0 of the realized MAE,
RMSE within 2.5 and 6.0 (measured: 0.90 and 2.75, 1.90 and 5.56; NannyML's own estimate is 3.30
and 3.65 from the realized values), over reference and analysis, in whose second half the
realized MAE drops by 17%.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from drifthouse.config import MetricsConfig
from drifthouse.detectors.categorical import CategoricalBlock
from drifthouse.detectors.dle import DleBatch, DleSketch
from drifthouse.detectors.reference import Profile
from drifthouse.profiles.columns import build_profile

DATA = Path(__file__).parent / "data"
FIXTURE: dict[str, Any] = json.loads((DATA / "nannyml_dle.json").read_text())
ARRAYS = dict(np.load(DATA / "nannyml_dle.npz"))  # an NpzFile reads its zip at every access
#: metric: (largest distance to NannyML's estimate, to the realized value), in sampling errors
TOLERANCE = {"mae": (1.0, 3.0), "rmse": (2.5, 6.0)}


def _columns(lo: int, hi: int) -> dict[str, Any]:
    num = ARRAYS["numeric"].astype(np.float64)
    out: dict[str, Any] = {n: num[lo:hi, j] for j, n in enumerate(FIXTURE["numeric"])}
    for j, (name, values) in enumerate(FIXTURE["categorical"].items()):
        out[name] = [values[k] for k in ARRAYS["codes"][lo:hi, j]]
    return out


def _profile() -> Profile:
    n = FIXTURE["reference_events"]
    return build_profile(
        model="car_price",
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
        source_digest="0" * 64,
        settings=MetricsConfig(),
        features=_columns(0, n),
        prediction=ARRAYS["y_pred"][:n].astype(np.float64),
        label=ARRAYS["y_true"][:n].astype(np.float64),
        task="regression",
    )


def test_estimates_within_stated_tolerance_of_nannyml() -> None:
    profile = _profile()
    model = profile.loss_model
    assert model is not None
    assert Profile.from_json(profile.to_json()) == profile  # the model lives in the JSON
    sk = DleSketch(model, range(len(model.numeric)), range(len(model.categorical)))
    block = CategoricalBlock(profile.categorical)
    worst = {m: [0.0, 0.0] for m in TOLERANCE}
    for chunk in FIXTURE["chunks"]:
        lo, hi = chunk["start"], chunk["end"]
        cols = _columns(lo, hi)
        batch = DleBatch(
            np.column_stack([cols[f] for f in model.numeric]),
            np.zeros((hi - lo, len(model.numeric)), dtype=np.uint8),
            np.column_stack([block.codes_for(j, cols[f]) for j, f in enumerate(model.categorical)]),
            ARRAYS["y_pred"][lo:hi].astype(np.float64),
        )
        n, mae, rmse = sk.estimates(sk.update(sk.empty(), batch))
        assert n == hi - lo
        for metric, ours in (("mae", mae), ("rmse", rmse)):
            theirs = chunk[metric]
            se = theirs["sampling_error"]
            to_nml = abs(ours - theirs["value"]) / se
            to_real = abs(ours - theirs["realized"]) / se
            worst[metric] = [max(worst[metric][0], to_nml), max(worst[metric][1], to_real)]
            assert to_nml <= TOLERANCE[metric][0], (lo, metric, ours, theirs)
            assert to_real <= TOLERANCE[metric][1], (lo, metric, ours, theirs)
        results = {r.metric: r.value for r in sk.evaluate(sk.update(sk.empty(), batch))}
        for metric in ("mae", "rmse"):  # NannyML's sampling error, from the same reference
            half = (results[f"estimated_{metric}_upper"] - results[f"estimated_{metric}"]) / 3
            assert abs(half - chunk[metric]["sampling_error"]) <= 1e-9 * half, metric
    print("largest distances in sampling errors (to NannyML, to realized):", worst)
