"""Data drifthouse did not generate: river's bundled Phishing set (1,250 pages), scored by an
online logistic regression, spread over six months with labels 1 to 60 days late, through
``drifthouse replay`` with ``metrics.late_labels`` and then the scheduled late join; the stored
accuracy of every window equals pandas' over the same predictions and labels."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from river import compose, datasets, linear_model, preprocessing

from drifthouse.app.late_join import LateJoinSchedule
from drifthouse.cli import main
from drifthouse.config import Config

HOUR = 3_600_000
DAY = 24 * HOUR
START = 1_767_225_600_000  # 2026-01-01
WINDOWS = {"1d": DAY, "1w": 7 * DAY}


def _phishing(tmp_path: Path) -> tuple[Path, Path, pd.DataFrame]:
    """Progressive validation (score, then learn) over the set, one page every ~3.5 hours."""
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    rng = np.random.default_rng(5)
    step = 182 * DAY // 1_250
    preds, rows = [], []
    for i, (x, y) in enumerate(datasets.Phishing()):
        score = float(model.predict_proba_one(x).get(True, 0.5))
        model.learn_one(x, y)
        ts = START + i * step
        eid = f"page-{i:05d}"
        preds.append({"model": "phishing", "model_version": "lr-1", "ts": ts, "event_id": eid,
                      "prediction": score, "features": {k: float(v) for k, v in x.items()}})  # fmt: skip
        rows.append({"event_id": eid, "ts": ts, "score": score, "label": int(y),
                     "label_ts": ts + int(rng.integers(DAY, 60 * DAY))})  # fmt: skip
    frame = pd.DataFrame(rows)
    p, lab = tmp_path / "pages.jsonl", tmp_path / "page-labels.jsonl"
    p.write_text("".join(json.dumps(d) + "\n" for d in preds))
    labels = frame.sort_values("label_ts")
    lab.write_text(
        "".join(
            json.dumps({"event_id": r.event_id, "model": "phishing", "ts": int(r.label_ts),
                        "label": int(r.label)}) + "\n"
            for r in labels.itertuples()
        )
    )  # fmt: skip
    return p, lab, frame


def _expected(frame: pd.DataFrame, size_ms: int) -> dict[int, tuple[float, int]]:
    right = (frame["score"] >= 0.5) == (frame["label"] == 1)
    grouped = right.groupby(frame["ts"] // size_ms * size_ms)
    return {int(s): (float(g.mean()), int(g.size)) for s, g in grouped}


def _stored(client: Any, database: str, window: str) -> dict[int, tuple[float, int]]:
    result = client.query(
        "SELECT toUnixTimestamp64Milli(window_start), value, n "
        f"FROM `{database}`.metrics FINAL WHERE run_id = 'phish' AND metric = 'accuracy' "
        "AND window = {window:String} AND segment = '' AND model_version = 'lr-1'",
        parameters={"window": window},
    )
    return {int(s): (float(v), int(n)) for s, v, n in result.result_rows}


def test_phishing_six_months_labels_weeks_late_accuracy_equals_pandas(
    tmp_path: Path, ch_dsn: str, ch_database: tuple[Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    client, database = ch_database
    pages, labels, frame = _phishing(tmp_path)
    assert (frame["ts"].max() - frame["ts"].min()) > 180 * DAY
    settings = {
        "store": {"dsn": ch_dsn, "database": database},
        "windows": [{"size": "1d"}, {"size": "7d"}],
        "metrics": {"label_horizon": "7d", "late_labels": True},
    }
    path = tmp_path / "drifthouse.yaml"
    path.write_text(json.dumps(settings))
    code = main(["replay", "-c", str(path), "--source", f"file:{pages}", "--labels",
                 f"file:{labels}", "--run-id", "phish"])  # fmt: skip
    assert code == 0
    said = " ".join(capsys.readouterr().out.split())
    assert re.search(r"late labels [\d,]+ joined in ClickHouse, [\d,]+ windows rewritten", said)
    for window, size in WINDOWS.items():
        assert _stored(client, database, window) == _expected(frame, size), window
    # The scheduled join, after the replay's own run, changes nothing.
    config = Config.model_validate(settings)
    report = LateJoinSchedule(every_ms=HOUR).run(
        client, database, config, {}, _sink(client, database), run_id="phish"
    )
    assert report.pairs > 1_000
    assert report.waiting == 0
    for window, size in WINDOWS.items():
        assert _stored(client, database, window) == _expected(frame, size), window


def _sink(client: Any, database: str) -> Any:
    from drifthouse.sinks import ClickHouseSink

    return ClickHouseSink(client, database=database)
