"""Performance estimation end to end on NannyML's bundled datasets: ``drifthouse profile`` of
the labelled reference, ``drifthouse replay`` of the analysis period with its labels, and the
stored ``estimated_*``, realized and ``estimation_error_*`` rows read back with
``drifthouse sql``, against NannyML's own per-chunk figures (tests/detectors/data, written by
scripts/nannyml_fixture.py). One event every 720 ms makes every hourly window one of NannyML's
chunks of 5,000 events; the first four chunks of the analysis period are replayed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drifthouse.detectors.reference import Profile
from tests.cli_process import replay_labelled, run_cli

DATA = Path(__file__).parent / "detectors" / "data"
FIXTURE: dict[str, Any] = json.loads((DATA / "nannyml_cbpe.json").read_text())
ARRAYS = dict(np.load(DATA / "nannyml_cbpe.npz"))  # an NpzFile reads its zip at every access
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP = 720  # ms: 5,000 events an hour
CLASSES = FIXTURE["multiclass"]["classes"]
CHUNKS = 4


def _event(kind: str, i: int, ts: int) -> tuple[dict[str, Any], object]:
    if kind == "binary":
        score = float(ARRAYS["binary_score"][i]) / 100
        event = {"model": "m", "ts": ts, "features": {"x": score}, "prediction": score}
        return event, int(ARRAYS["binary_label"][i])
    scores = ARRAYS["multiclass_score"][i].astype(float) / 100
    event = {
        "model": "m",
        "ts": ts,
        "features": {"x": float(scores[0])},
        "prediction": {c: float(s) for c, s in zip(CLASSES, scores, strict=True)},
        "predicted_class": CLASSES[int(ARRAYS["multiclass_pred"][i])],
    }
    return event, CLASSES[int(ARRAYS["multiclass_label"][i])]


def _write(tmp: Path, kind: str) -> tuple[int, Path]:
    n_ref = FIXTURE[kind]["reference_events"]
    n_all = n_ref + CHUNKS * FIXTURE["chunk_size"]
    with (tmp / "reference.jsonl").open("w") as ref:
        for i in range(n_ref):
            event, label = _event(kind, i, T0 + i * STEP)
            ref.write(json.dumps(event | {"label": label}) + "\n")
    start = T0 + n_ref * STEP  # a whole number of hours later
    with (tmp / "predictions.jsonl").open("w") as preds, (tmp / "labels.jsonl").open("w") as labs:
        for i in range(n_ref, n_all):
            ts = start + (i - n_ref) * STEP
            event, label = _event(kind, i, ts)
            preds.write(json.dumps(event | {"event_id": f"e{i}"}) + "\n")
            labs.write(
                json.dumps({"event_id": f"e{i}", "model": "m", "ts": ts + 60_000, "label": label})
                + "\n"
            )
    return start, tmp / "drifthouse.yaml"


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_replay_estimates_like_nannyml(tmp_path: Path, kind: str) -> None:
    start, config = _write(tmp_path, kind)
    done = run_cli(
        "profile", str(tmp_path / "reference.jsonl"), "--model", "m", "--out", "m.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    profile = Profile.from_json((tmp_path / "m.json").read_bytes())
    assert profile.calibration is not None
    said = " ".join(done.stdout.split())
    if kind == "binary":
        assert (
            "performance estimation: binary from 50,000 labelled events; calibrated: score" in said
        )
    else:
        assert (
            "performance estimation: multiclass (3 classes) from 60,000 labelled events; "
            "calibrated: highstreet_card, prepaid_card, upmarket_card"
        ) in said
    query = (
        "SELECT window_start, metric, value FROM metrics FINAL WHERE model = 'm' AND segment = '' "
        "AND feature = '' AND (metric LIKE 'estimat%' OR metric IN "
        "('accuracy', 'precision', 'recall', 'f1', 'roc_auc')) ORDER BY window_start, metric"
    )
    rows = replay_labelled(tmp_path, config, "classification", query)
    got: dict[int, dict[str, float]] = {}
    for r in rows:
        ws = r["window_start"]
        key = (
            ws
            if isinstance(ws, int)
            else int(np.datetime64(ws.replace("Z", ""), "ms").astype(np.int64))
        )
        got.setdefault(key, {})[r["metric"]] = float(r["value"])
    chunks = [c for c in FIXTURE[kind]["chunks"] if c["period"] == "analysis"][:CHUNKS]
    assert len(got) == len(chunks)
    for i, chunk in enumerate(chunks):
        values = got[start + i * 3_600_000]
        for m in ("accuracy", "precision", "recall", "f1", "roc_auc"):
            theirs = chunk[m]
            # Binary: the same calibration as NannyML's, so the same figures (test_cbpe_nannyml);
            # multiclass: one class calibrated where NannyML does not, within half a sampling
            # error.
            tol = 2e-5 if kind == "binary" else 0.5 * theirs["sampling_error"]
            assert abs(values[f"estimated_{m}"] - theirs["value"]) <= tol, (i, m)
            lo, hi = values[f"estimated_{m}_lower"], values[f"estimated_{m}_upper"]
            assert lo <= values[f"estimated_{m}"] <= hi
            if m in values:  # realized from the labels (no macro ROC AUC for classes)
                assert values[f"estimation_error_{m}"] == values[f"estimated_{m}"] - values[m]
        assert values["accuracy"] == pytest.approx(chunks[i]["accuracy"]["realized"], abs=1e-12)
