"""A replay with labels and scores its metrics cannot use: they are counted, the rest scored,
and the rows equal those of a live run (docs/model-performance.md, "Label metrics" and
"Performance without labels")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from drifthouse.app.replay import replay
from drifthouse.config import Config
from drifthouse.detectors.cbpe import CbpeBatch, CbpeSketch
from drifthouse.detectors.labels import binary_metrics, regression_metrics
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from tests.detectors.strategies import make_profile
from tests.live_feed import live_run

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EVERY = 30_000


def _config() -> Config:
    return Config.model_validate(
        {"windows": [{"size": "1d"}], "models": {"cp": {"task": "regression"}, "cl": {}}}
    )


def _regression_stream(n: int) -> tuple[list[bytes], list[bytes], list[object], np.ndarray]:
    """Car prices labelled a minute later; 1% of labels ``"?"``, 1% ``""``, 1% numerals."""
    rng = np.random.default_rng(5)
    y = np.round(rng.uniform(1_000, 9_000, n))
    p = y + rng.normal(0, 300, n)
    preds, labels, sent = [], [], []
    for i in range(n):
        ts = START + i * EVERY
        label: object = float(y[i])
        if i % 100 == 1:
            label = "?"
        elif i % 100 == 2:
            label = ""
        elif i % 100 == 3:
            label = f"{y[i]:.1f}"
        sent.append(label)
        preds.append(
            json.dumps(
                {"model": "cp", "ts": ts, "event_id": f"e{i}", "prediction": float(p[i]),
                 "features": {"km": float(i % 97)}}
            ).encode()
        )  # fmt: skip
        labels.append(
            json.dumps({"event_id": f"e{i}", "model": "cp", "ts": ts + 60_000, "label": label})
            .encode()
        )  # fmt: skip
    return preds, labels, sent, p


def _write(path: Path, lines: Sequence[bytes]) -> str:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return f"file:{path}"


def _rows(sink: MemorySink, model: str) -> dict[tuple[int, str], float]:
    return {
        (int(r.window_start), r.metric): float(r.value)
        for r in sink.rows("metrics")
        if r.model == model and r.segment == "" and r.feature == ""
    }


def _key(row: object) -> tuple[object, ...]:
    return tuple(
        getattr(row, f)
        for f in ("window", "window_start", "model", "feature", "segment", "metric", "value", "n")
    )


def test_replay_counts_unusable_labels_and_scores_numeric_strings(tmp_path: Path) -> None:
    config = _config()
    n = 2_880  # one day
    preds, labels, sent, p = _regression_stream(n)
    sink = MemorySink()
    summary = replay(
        config,
        source=_write(tmp_path / "preds.jsonl", preds),
        labels=_write(tmp_path / "labels.jsonl", labels),
        sink=sink,
        run_id="r",
        profiles={},
        dead_letters=MemoryDeadLetters(),
    )
    assert summary.labels is not None
    assert summary.labels.joined == n
    rows = _rows(sink, "cp")
    usable = [i for i, v in enumerate(sent) if v not in ("?", "")]
    naive = regression_metrics(
        y_true=np.array([float(sent[i]) for i in usable]),  # type: ignore[arg-type]
        y_pred=p[usable],
    )
    assert rows[(START, "labels")] == n
    assert rows[(START, "labels_unusable")] == n - len(usable) == 2 * n // 100 + 1
    for metric in ("mae", "rmse", "r2", "mape"):
        assert rows[(START, metric)] == pytest.approx(naive[metric], rel=1e-12), metric
    live = live_run(config, preds, labels, {})
    assert sorted(_key(r) for r in sink.rows("metrics")) == sorted(
        _key(r) for r in live.rows("metrics")
    )


def _binary_stream(n: int) -> tuple[list[bytes], list[bytes], np.ndarray, np.ndarray]:
    """Scores labelled a minute later; 20% of the scores sent as percentages (87.0)."""
    rng = np.random.default_rng(6)
    score = rng.uniform(size=n)
    y = (rng.uniform(size=n) < score).astype(int)
    sent = np.where(np.arange(n) % 5 == 0, np.round(score * 100), score)
    preds, labels = [], []
    for i in range(n):
        ts = START + i * EVERY
        preds.append(
            json.dumps(
                {"model": "m", "ts": ts, "event_id": f"b{i}", "prediction": float(sent[i]),
                 "features": {"x": float(score[i])}}
            ).encode()
        )  # fmt: skip
        labels.append(
            json.dumps({"event_id": f"b{i}", "model": "m", "ts": ts + 60_000, "label": int(y[i])})
            .encode()
        )  # fmt: skip
    return preds, labels, sent, y


def test_replay_leaves_out_scores_that_are_no_probabilities(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    ref_score = rng.uniform(size=3_000)
    ref_label = (rng.uniform(size=ref_score.size) < ref_score).astype(int)
    profile = make_profile({"x": ref_score}, prediction=ref_score, label=ref_label)
    assert profile.calibration is not None
    config = Config.model_validate(
        {"windows": [{"size": "1d"}], "models": {"m": {"task": "classification"}}}
    )
    n = 2_880
    preds, labels, sent, y = _binary_stream(n)
    sink = MemorySink()
    replay(
        config,
        source=_write(tmp_path / "preds.jsonl", preds),
        labels=_write(tmp_path / "labels.jsonl", labels),
        sink=sink,
        run_id="r",
        profiles={"m": profile},
        dead_letters=MemoryDeadLetters(),
    )
    rows = _rows(sink, "m")
    ok = (sent >= 0) & (sent <= 1)
    sk = CbpeSketch(profile.calibration)
    naive = sk.values(sk.estimates(sk.update(sk.empty(), CbpeBatch(sent[ok]))))
    assert rows[(START, "estimated_accuracy")] == naive["accuracy"]
    assert rows[(START, "cbpe_unusable")] == n - int(ok.sum()) > n // 6
    realized = binary_metrics(y_true=y[ok] == 1, score=sent[ok])
    assert rows[(START, "accuracy")] == pytest.approx(realized["accuracy"], abs=1e-12)
    assert rows[(START, "labels_unusable")] == n - int(ok.sum())
    live = live_run(config, preds, labels, {"m": profile})
    assert sorted(_key(r) for r in sink.rows("metrics")) == sorted(
        _key(r) for r in live.rows("metrics")
    )
