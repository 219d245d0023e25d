"""Model-level serving metrics through the whole pipeline, against a naive computation from the
raw events: volume, throughput, error rates, latency quantiles and prediction drift, for scores
and for ``{class: probability}`` predictions."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.detectors import stats
from drifthouse.detectors.reference import prediction_score
from drifthouse.profiles.columns import build_profile
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message
from tests.workers import Stream

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z: the decoders refuse times before 2000
CONFIG = Config.model_validate({"windows": [{"size": "1h"}, {"size": "30m", "hop": "10m"}]})


def _rows(profiles: dict[str, Any], messages: list[Message]) -> dict[tuple[Any, ...], float]:
    sink = MemorySink()
    pipe = Pipeline(
        config=CONFIG,
        profiles=profiles,
        sink=sink,
        dead_letters=MemoryDeadLetters(),
        run_id="t",
        computed_at=lambda: 0,
    )
    pipe.expect_partitions({0})
    for lo in range(0, len(messages), 500):
        pipe.process(messages[lo : lo + 500])
    pipe.finish()
    sink.flush()
    return {
        (r.model, r.window, r.window_start, r.feature, r.segment, r.metric): r.value
        for r in sink.rows("metrics")
    }


def _windows(start: int, end: int) -> list[tuple[str, int, int]]:
    """(name, start, size) of every 1h and 30m/10m window of [start, end)."""
    out = [("1h", s, HOUR) for s in range(start, end, HOUR)]
    half = HOUR // 2
    out += [("30m/10m", s, half) for s in range(start - half + HOUR // 6, end, HOUR // 6)]
    return out


def test_volume_errors_and_latency_match_the_raw_events(small_stream: Stream) -> None:
    msgs = [
        Message(r.value, 0, i, "predictions", r.key) for i, r in enumerate(small_stream.records)
    ]
    rows = _rows(small_stream.profiles, msgs)
    events = [json.loads(r.value) for r in small_stream.records]
    ts = np.array([r.ts_ms for r in small_stream.records])
    sc = small_stream.scenario
    checked = 0
    for model in ("fraud", "eta"):
        mine = np.array([e["model"] == model for e in events])
        status = np.array([e.get("status", 200) for e in events])
        latency = np.array([e["latency_ms"] for e in events])
        for name, start, size in _windows(sc.start_ms, sc.end_ms):
            sel = mine & (ts >= start) & (ts < start + size)
            n = int(sel.sum())
            key = (model, name, start, "", "")
            if n == 0:
                assert (*key, "events") not in rows
                continue
            checked += 1
            assert rows[(*key, "events")] == n
            assert rows[(*key, "throughput_rps")] == pytest.approx(n / (size / 1000), rel=1e-12)
            fives = ((status[sel] >= 500) & (status[sel] < 600)).mean()
            fours = ((status[sel] >= 400) & (status[sel] < 500)).mean()
            assert rows[(*key, "error_rate_5xx")] == pytest.approx(fives, rel=1e-12)
            assert rows[(*key, "error_rate_4xx")] == pytest.approx(fours, rel=1e-12)
            for q in (50, 95, 99):
                want = np.quantile(latency[sel], q / 100, method="lower")
                assert rows[(*key, f"latency_p{q}")] == pytest.approx(want, rel=0.01)
    assert checked > 100


def test_prediction_drift_matches_the_reference_bins_and_scipy(small_stream: Stream) -> None:
    msgs = [
        Message(r.value, 0, i, "predictions", r.key) for i, r in enumerate(small_stream.records)
    ]
    rows = _rows(small_stream.profiles, msgs)
    sc = small_stream.scenario
    reference = [
        json.loads(r.value)["prediction"]
        for r in small_stream.records
        if r.key == b"eta" and r.ts_ms < sc.reference_end_ms
    ]
    pred = small_stream.profiles["eta"].prediction
    assert pred is not None
    for start in range(sc.start_ms, sc.end_ms, HOUR):
        scores = np.array(
            [
                json.loads(r.value)["prediction"]
                for r in small_stream.records
                if r.key == b"eta" and start <= r.ts_ms < start + HOUR
            ]
        )
        key = ("eta", "1h", start, "__prediction__", "")
        coarse = np.bincount(
            np.searchsorted(pred.psi_edges, scores, side="right"), minlength=len(pred.psi_edges) + 1
        )
        fine = np.bincount(
            np.searchsorted(pred.edges, scores, side="right"), minlength=len(pred.edges) + 1
        )
        ref_psi, ref_fine = np.array(pred.psi_counts), np.array(pred.counts)
        assert rows[(*key, "psi")] == pytest.approx(
            stats.psi(ref_counts=ref_psi, cur_counts=coarse), rel=1e-12
        )
        assert rows[(*key, "js")] == pytest.approx(
            stats.js_distance(ref_counts=ref_psi, cur_counts=coarse), rel=1e-12
        )
        assert rows[(*key, "mean")] == pytest.approx(scores.mean(), rel=1e-12)
        d, _ = stats.ks_binned(ref_counts=ref_fine, cur_counts=fine)
        assert rows[(*key, "ks")] == pytest.approx(d, rel=1e-12)
        # ... which is within the contract's 0.02 of the exact two-sample statistic.
        exact = scipy_stats.ks_2samp(reference, scores).statistic
        assert abs(rows[(*key, "ks")] - exact) <= 0.02


def test_class_probabilities_are_scored_as_the_positive_class() -> None:
    """``{"0": p0, "1": p1}`` predictions: drift of the positive class's probability."""
    rng = random.Random(5)
    ref = [rng.betavariate(2, 5) for _ in range(4000)]
    profile = build_profile(
        model="churn",
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
        source_digest="t",
        settings=CONFIG.metrics,
        features={"x": [rng.random() for _ in ref]},
        prediction=[prediction_score({"no": 1 - p, "yes": p}) for p in ref],
    )  # fmt: skip  (as `drifthouse profile` reads such predictions)
    assert profile.prediction is not None
    assert profile.prediction.kind == "numeric"
    msgs, scores = [], []
    for i in range(1200):
        p = rng.betavariate(2, 5) if i < 600 else rng.betavariate(5, 2)  # the second hour shifts
        scores.append(p)
        event = {
            "model": "churn",
            "ts": T0 + i * 6_000,
            "features": {"x": rng.random()},
            "prediction": {"no": 1 - p, "yes": p},
        }
        msgs.append(Message(json.dumps(event).encode(), 0, i, "predictions", b"churn"))
    rows = _rows({"churn": profile}, msgs)
    pred = profile.prediction
    for hour in (0, 1):
        got = np.array(scores[hour * 600 : (hour + 1) * 600])
        key = ("churn", "1h", T0 + hour * HOUR, "__prediction__", "")
        coarse = np.bincount(
            np.searchsorted(pred.psi_edges, got, side="right"), minlength=len(pred.psi_edges) + 1
        )
        want = stats.psi(ref_counts=np.array(pred.psi_counts), cur_counts=coarse)
        assert rows[(*key, "psi")] == pytest.approx(want, rel=1e-12)
        assert rows[(*key, "mean")] == pytest.approx(got.mean(), rel=1e-12)
    assert rows[("churn", "1h", T0, "__prediction__", "", "psi")] < 0.1
    assert rows[("churn", "1h", T0 + HOUR, "__prediction__", "", "psi")] > 1.0
