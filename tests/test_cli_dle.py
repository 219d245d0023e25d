"""Direct loss estimation end to end on NannyML's car price dataset: ``drifthouse profile`` of
the labelled reference, ``drifthouse replay`` of two analysis chunks with their labels (one
before the shift, one after: the realized MAE drops from 853 to 703), and the stored
``estimated_*``, realized and ``estimation_error_*`` rows read back with ``drifthouse sql``,
against the same sketch in this process (to the last digit) and NannyML's per-chunk figures
(tests/detectors/data, written by scripts/nannyml_dle_fixture.py; tolerances of
tests/detectors/test_dle_nannyml.py). One event every 600 ms makes every hourly window one of
NannyML's chunks of 6,000 events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from drifthouse.detectors.categorical import CategoricalBlock
from drifthouse.detectors.dle import DleBatch, DleSketch
from drifthouse.detectors.reference import Profile
from tests.cli_process import replay_labelled, run_cli
from tests.detectors.test_dle_nannyml import ARRAYS, FIXTURE, TOLERANCE, _columns

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP = 600  # ms: 6,000 events an hour
CHUNKS = (10, 15)  # chunks of the fixture (reference and analysis): before and after the shift


def _event(i: int, ts: int) -> dict[str, Any]:
    cols = _columns(i, i + 1)
    feats = {k: (float(v[0]) if k in FIXTURE["numeric"] else v[0]) for k, v in cols.items()}
    return {"model": "m", "ts": ts, "features": feats, "prediction": float(ARRAYS["y_pred"][i])}


def _rows(tmp: Path) -> list[int]:
    n_ref = FIXTURE["reference_events"]
    with (tmp / "reference.jsonl").open("w") as ref:
        for i in range(n_ref):
            event = _event(i, T0 + i * STEP) | {"label": float(ARRAYS["y_true"][i])}
            ref.write(json.dumps(event) + "\n")
    start = T0 + n_ref * STEP  # a whole number of hours later
    rows = [
        i for c in CHUNKS for i in range(FIXTURE["chunks"][c]["start"], FIXTURE["chunks"][c]["end"])
    ]
    with (tmp / "predictions.jsonl").open("w") as preds, (tmp / "labels.jsonl").open("w") as labs:
        for k, i in enumerate(rows):
            ts = start + k * STEP
            preds.write(json.dumps(_event(i, ts) | {"event_id": f"e{i}"}) + "\n")
            label = {"event_id": f"e{i}", "model": "m", "ts": ts + 60_000}
            labs.write(json.dumps(label | {"label": float(ARRAYS["y_true"][i])}) + "\n")
    return rows


def test_replay_estimates_mae_and_rmse(tmp_path: Path) -> None:
    _rows(tmp_path)
    done = run_cli(
        "profile", str(tmp_path / "reference.jsonl"), "--model", "m", "--label", "label",
        "--out", "m.json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    profile = Profile.from_json((tmp_path / "m.json").read_bytes())
    assert profile.loss_model is not None
    said = " ".join(done.stdout.split())
    assert "performance estimation: regression (DLE) from 60,000 labelled events" in said
    query = (
        "SELECT toUnixTimestamp64Milli(window_start) AS ws, metric, value FROM metrics FINAL "
        "WHERE model = 'm' AND segment = '' AND feature = '' AND (metric LIKE 'estimat%' OR "
        "metric IN ('mae', 'rmse')) ORDER BY ws, metric"
    )
    rows = replay_labelled(tmp_path, tmp_path / "drifthouse.yaml", "regression", query)
    got: dict[int, dict[str, float]] = {}
    for r in rows:
        got.setdefault(int(r["ws"]), {})[r["metric"]] = float(r["value"])
    assert len(got) == len(CHUNKS)
    model = profile.loss_model
    sk = DleSketch(model, range(len(model.numeric)), range(len(model.categorical)))
    block = CategoricalBlock(profile.categorical)
    for (_, values), c in zip(sorted(got.items()), CHUNKS, strict=True):
        chunk = FIXTURE["chunks"][c]
        lo, hi = chunk["start"], chunk["end"]
        cols = _columns(lo, hi)
        batch = DleBatch(
            np.column_stack([cols[f] for f in model.numeric]),
            np.zeros((hi - lo, len(model.numeric)), dtype=np.uint8),
            np.column_stack([block.codes_for(j, cols[f]) for j, f in enumerate(model.categorical)]),
            ARRAYS["y_pred"][lo:hi].astype(np.float64),
        )
        mine = {r.metric: r.value for r in sk.evaluate(sk.update(sk.empty(), batch))}
        for metric in ("mae", "rmse"):
            assert values[f"estimated_{metric}"] == mine[f"estimated_{metric}"]  # same bits
            assert values[f"estimated_{metric}_lower"] == mine[f"estimated_{metric}_lower"]
            assert values[f"estimated_{metric}_upper"] == mine[f"estimated_{metric}_upper"]
            theirs = chunk[metric]
            se = theirs["sampling_error"]
            assert abs(values[f"estimated_{metric}"] - theirs["value"]) <= TOLERANCE[metric][0] * se
            assert abs(values[metric] - theirs["realized"]) <= 1e-9 * theirs["realized"]
            assert values[f"estimation_error_{metric}"] == (
                values[f"estimated_{metric}"] - values[metric]
            )
