"""Model performance through the whole pipeline: delayed labels joined and windowed by the
prediction's time, rewrites when late labels come, metric events, change detection and
feature-importance shift, checked against river and NumPy references."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pytest
from river import metrics as rm

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config, MetricsConfig
from drifthouse.profiles.columns import build_profile
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message

HOUR = 3_600_000
MINUTE = 60_000
T0 = 1_767_225_600_000  # 2026-01-01


def _config(**metrics):
    return Config.model_validate(
        {
            "windows": [{"size": "1h"}],
            "metrics": {"allowed_lateness": "30s", "label_rewrite_every": "1m", **metrics},
        }
    )


def _profile(rng):
    x = rng.normal(size=20_000)
    c = rng.choice(["a", "b", "c"], size=20_000)
    score = 1 / (1 + np.exp(-2 * x))
    label = (rng.random(20_000) < score).astype(int)
    return build_profile(
        model="clf", model_version="1", created_at="2026-01-01T00:00:00Z", source_digest="",
        settings=MetricsConfig(), features={"x": x, "c": c.tolist()}, prediction=score,
        label=label,
    )  # fmt: skip


def _stream(rng, hours=3, per_hour=1_200, *, drive="x"):
    """Prediction events, and labels (90% of them, 1-90 minutes late, plus 20 for unknown
    events), each as (arrival time, kind, event dict)."""
    n = hours * per_hour
    ts = np.sort(T0 + rng.integers(0, hours * HOUR, n))
    x = rng.normal(size=n)
    cat = np.arange(n) % 3
    # The score follows x (as in the reference), or the category instead.
    score = 1 / (1 + np.exp(-2 * (x if drive == "x" else cat - 1.0)))
    label = (rng.random(n) < score).astype(int)
    out = []
    truth = []
    for i in range(n):
        event = {
            "model": "clf", "model_version": "1", "ts": int(ts[i]), "event_id": f"e{i}",
            "features": {"x": float(x[i]), "c": ["a", "b", "c"][i % 3]},
            "prediction": round(float(score[i]), 6), "segment": {"grp": "ab"[i % 2]},
        }  # fmt: skip
        out.append((int(ts[i]), 0, event))
        if rng.random() < 0.9:
            arrival = int(ts[i] + rng.integers(MINUTE, 90 * MINUTE))
            out.append((arrival, 1, {"event_id": f"e{i}", "model": "clf", "ts": arrival,
                                     "label": int(label[i])}))  # fmt: skip
            truth.append((int(ts[i]), round(float(score[i]), 6), int(label[i]), "ab"[i % 2]))
    for j in range(20):  # in the first half hour: beyond the 2 h horizon by the end
        arrival = T0 + int(rng.integers(0, 30 * MINUTE))
        out.append(
            (arrival, 1, {"event_id": f"ghost{j}", "model": "clf", "ts": arrival, "label": 1})
        )
    out.sort(key=lambda r: (r[0], r[1]))
    return out, truth, n


CONFIG = _config(label_horizon="2h")


def _run(config, profile, stream, *, batch=500, metric_events=(), model="clf"):
    sink = MemorySink()
    key = model.encode()
    pipe = Pipeline(
        config=config, profiles={model: profile}, sink=sink, dead_letters=MemoryDeadLetters(),
        run_id="t", computed_at=lambda: 0,
    )  # fmt: skip
    pipe.expect_partitions([0])
    preds: list[Message] = []
    labels: list[Message] = []
    offset = 0
    for _, kind, event in stream:
        raw = json.dumps(event).encode()
        if kind == 1:
            labels.append(Message(raw, 0, len(labels), "labels", key))
            continue
        preds.append(Message(raw, 0, offset, "predictions", key))
        offset += 1
        if len(preds) == batch:
            pipe.add_labels(labels)
            pipe.process(preds)
            preds, labels = [], []
    pipe.add_labels(labels)
    pipe.add_metric_events([Message(json.dumps(e).encode(), 0, i, "metrics", key)
                            for i, e in enumerate(metric_events)])  # fmt: skip
    pipe.process(preds)
    pipe.finish()
    sink.flush()
    return sink


def _final(sink, version="1"):
    """Final values of one model version's rows (labels of unknown events are filed under
    version ``unknown``)."""
    return {
        (r.window_start, r.segment, r.metric): (r.value, r.n)
        for r in sink.rows("metrics")
        if r.model_version == version
    }


@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(11)
    profile = _profile(rng)
    stream, truth, n = _stream(rng)
    sink = _run(CONFIG, profile, stream)
    return profile, stream, truth, n, sink


def test_label_metrics_match_river_in_the_window_of_the_prediction(labelled):
    _, _, truth, _, sink = labelled
    got = _final(sink)
    by_window = defaultdict(list)
    for ts, score, label, seg in truth:
        by_window[(ts // HOUR) * HOUR].append((score, label, seg))
    assert len(by_window) == 3
    for start, pairs in by_window.items():
        for seg in ("", "grp=a", "grp=b"):
            rows = [(s, y) for s, y, g in pairs if not seg or seg == f"grp={g}"]
            acc, prec, rec, f1 = rm.Accuracy(), rm.Precision(), rm.Recall(), rm.F1()
            for s, y in rows:
                for m in (acc, prec, rec, f1):
                    m.update(bool(y), s >= 0.5)
            for name, ref in (("accuracy", acc), ("precision", prec), ("recall", rec), ("f1", f1)):
                value, n = got[(start, seg, name)]
                assert value == pytest.approx(ref.get(), abs=1e-12), (start, seg, name)
                assert n == len(rows)
        # AUC: the Mann-Whitney statistic of the scores, within the binning bound.
        s = np.array([p[0] for p in pairs])
        y = np.array([p[1] for p in pairs])
        pos, neg = s[y == 1], s[y == 0]
        exact = np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])
        exact /= pos.size * neg.size
        assert got[(start, "", "roc_auc")][0] == pytest.approx(exact, abs=2e-3)


def test_coverage_unknown_labels_and_fairness_gaps(labelled):
    _, stream, truth, _, sink = labelled
    got = _final(sink)
    predictions = defaultdict(int)
    for ts, kind, _ in stream:
        if kind == 0:
            predictions[(ts // HOUR) * HOUR] += 1
    labelled_in = defaultdict(int)
    for ts, *_ in truth:
        labelled_in[(ts // HOUR) * HOUR] += 1
    for start, count in predictions.items():
        value, rows_n = got[(start, "", "labels_coverage")]
        assert value == pytest.approx(labelled_in[start] / count)
        assert rows_n == count
        assert got[(start, "", "labels")][0] == labelled_in[start]
    # The 20 labels for events never seen are counted (once the horizon has passed them), in
    # the window of the label's time.
    unknown = _final(sink, "unknown")
    assert sum(v for (_, _, m), (v, _) in unknown.items() if m == "labels_unmatched") == 20
    # Fairness gaps per segment attribute, from the segments' confusion counts.
    for start in predictions:
        rates = {}
        for g in "ab":
            rows = [
                (s >= 0.5, y) for ts, s, y, gg in truth if gg == g and (ts // HOUR) * HOUR == start
            ]
            rates[g] = sum(p for p, _ in rows) / len(rows)
        dp, _ = got[(start, "grp", "demographic_parity_diff")]
        assert dp == pytest.approx(abs(rates["a"] - rates["b"]), abs=1e-12)


def test_late_labels_rewrite_the_window_under_the_same_key(labelled):
    _, _, truth, _, sink = labelled
    first = T0
    written = [r for r in sink.written if r.metric == "labels" and r.window_start == first
               and r.segment == "" and r.model_version == "1"]  # fmt: skip
    # Written when the watermark passed the window, then again as its late labels came in.
    assert len(written) >= 2
    assert [r.value for r in written] == sorted(r.value for r in written)
    final = sum(1 for ts, *_ in truth if ts < first + HOUR)
    assert written[-1].value == final
    assert _final(sink)[(first, "", "labels")][0] == final


def test_label_rows_do_not_depend_on_batch_cuts(labelled):
    profile, stream, _, _, sink = labelled
    other = _run(CONFIG, profile, stream, batch=137)
    assert _final(other) == _final(sink)


def test_metric_events_become_mean_and_max_per_window(labelled):
    profile, stream, *_ = labelled
    rng = np.random.default_rng(3)
    events = [
        {"model": "clf", "model_version": "1", "ts": T0 + int(t), "metrics": {"cpu_util": float(v)}}
        for t, v in zip(rng.integers(0, 2 * HOUR, 300), rng.random(300), strict=True)
    ]
    sink = _run(CONFIG, profile, stream, metric_events=events)
    got = _final(sink)
    for start in (T0, T0 + HOUR):
        values = [e["metrics"]["cpu_util"] for e in events if start <= e["ts"] < start + HOUR]
        assert got[(start, "", "cpu_util")][0] == pytest.approx(np.mean(values), rel=1e-12)
        assert got[(start, "", "cpu_util_max")][0] == max(values)
        assert got[(start, "", "metric_events")][0] == len(values)


def test_importance_shift_when_the_prediction_follows_another_feature():
    rng = np.random.default_rng(5)
    profile = _profile(rng)
    same, _, _ = _stream(rng, hours=2, per_hour=3_000)
    moved, _, _ = _stream(rng, hours=2, per_hour=3_000, drive="c")
    for stream, low, high in ((same, 0.0, 0.1), (moved, 0.8, 1.0)):
        got = _final(_run(_config(), profile, stream))
        shifts = [v for (_, seg, m), (v, _) in got.items() if m == "importance_shift"]
        assert len(shifts) == 2
        assert all(low <= s <= high for s in shifts), shifts


def test_change_detection_fires_after_a_step_in_the_error_rate():
    rng = np.random.default_rng(9)
    config = Config.model_validate(
        {
            "windows": [{"size": "10m"}],
            "metrics": {"change_detection": {"series": ["error_rate_5xx"], "warmup": 10}},
        }
    )
    step = T0 + 40 * 10 * MINUTE
    stream = []
    for i, t in enumerate(np.sort(T0 + rng.integers(0, 60 * 10 * MINUTE, 30_000))):
        rate = 0.01 if t < step else 0.2
        event = {"model": "svc", "ts": int(t), "event_id": f"s{i}", "features": {},
                 "status": 500 if rng.random() < rate else 200}  # fmt: skip
        stream.append((int(t), 0, event))
    sink = MemorySink()
    pipe = Pipeline(config=config, profiles={}, sink=sink, dead_letters=MemoryDeadLetters(),
                    run_id="t", computed_at=lambda: 0)  # fmt: skip
    pipe.expect_partitions([0])
    msgs = [
        Message(json.dumps(e).encode(), 0, i, "predictions", b"svc")
        for i, (_, _, e) in enumerate(stream)
    ]
    for lo in range(0, len(msgs), 1000):
        pipe.process(msgs[lo : lo + 1000])
    pipe.finish()
    sink.flush()
    changes = {
        r.window_start: r.value for r in sink.rows("metrics") if r.metric == "change_detected"
    }
    # Warm-up: the first 10 windows are not judged.
    assert min(changes) == T0 + 10 * 10 * MINUTE
    fired = sorted(start for start, v in changes.items() if v == 1.0)
    assert fired, "no change detected"
    assert step <= fired[0] <= step + 3 * 10 * MINUTE
    assert not math.isnan(fired[0])


def test_a_model_without_labels_holds_none_of_its_predictions(labelled):
    profile, stream, *_ = labelled
    config = Config.model_validate(
        {
            **CONFIG.model_dump(by_alias=True, exclude={"base_dir"}),
            "models": {"clf": {"labels": False}},
        }
    )
    sink = MemorySink()
    pipe = Pipeline(config=config, profiles={"clf": profile}, sink=sink,
                    dead_letters=MemoryDeadLetters(), run_id="t", computed_at=lambda: 0)  # fmt: skip
    preds = [Message(json.dumps(e).encode(), 0, i, "predictions", b"clf")
             for i, (_, kind, e) in enumerate(stream) if kind == 0]  # fmt: skip
    pipe.process(preds)
    assert pipe.merge.labels is not None
    assert pipe.merge.labels.join.stats.predictions == 0
    pipe.finish()
    sink.flush()
    assert not [r for r in sink.rows("metrics") if r.metric in {"accuracy", "labels_coverage"}]


def test_regression_label_metrics_match_numpy_and_river_through_the_pipeline():
    """A regressor whose labels come 1-60 minutes late: mae, rmse, r2 and mape per window of
    the prediction's time, from every labelled prediction, against NumPy and river."""
    rng = np.random.default_rng(21)
    x = rng.normal(size=5_000)
    profile = build_profile(
        model="eta", model_version="1", created_at="2026-01-01T00:00:00Z", source_digest="",
        settings=MetricsConfig(), features={"x": x}, prediction=10 + 3 * x,
        label=10 + 3 * x + rng.normal(0, 1, x.size),
    )  # fmt: skip
    assert profile.baselines.task == "regression"
    n = 2_400
    ts = np.sort(T0 + rng.integers(0, 2 * HOUR, n))
    feats = rng.normal(size=n)
    pred = np.round(10 + 3 * feats, 4)
    truth = np.round(pred + rng.normal(0, 1 + (ts >= T0 + HOUR), n), 4)  # worse in hour 2
    stream = []
    for i in range(n):
        event = {"model": "eta", "model_version": "1", "ts": int(ts[i]), "event_id": f"r{i}",
                 "features": {"x": float(feats[i])}, "prediction": float(pred[i])}  # fmt: skip
        stream.append((int(ts[i]), 0, event))
        arrival = int(ts[i] + rng.integers(MINUTE, 60 * MINUTE))
        stream.append((arrival, 1, {"event_id": f"r{i}", "model": "eta", "ts": arrival,
                                    "label": float(truth[i])}))  # fmt: skip
    stream.sort(key=lambda r: (r[0], r[1]))
    sink = _run(CONFIG, profile, stream, batch=300, model="eta")
    got = _final(sink)
    for hour in (0, 1):
        start = T0 + hour * HOUR
        sel = (ts >= start) & (ts < start + HOUR)
        y, p = truth[sel], pred[sel]
        err = y - p
        mae, rmse, r2 = rm.MAE(), rm.RMSE(), rm.R2()
        for yi, pi in zip(y.tolist(), p.tolist(), strict=True):
            for m in (mae, rmse, r2):
                m.update(yi, pi)
        want = {
            "mae": np.abs(err).mean(),
            "rmse": np.sqrt((err**2).mean()),
            "r2": 1 - (err**2).sum() / ((y - y.mean()) ** 2).sum(),
            "mape": np.mean(np.abs(err) / np.abs(y)),
        }
        for name, value in want.items():
            assert got[(start, "", name)][0] == pytest.approx(value, rel=1e-9), (hour, name)
            assert got[(start, "", name)][1] == sel.sum()
        assert got[(start, "", "mae")][0] == pytest.approx(mae.get(), rel=1e-9)
        assert got[(start, "", "rmse")][0] == pytest.approx(rmse.get(), rel=1e-9)
        assert got[(start, "", "r2")][0] == pytest.approx(r2.get(), rel=1e-9)
    assert got[(T0 + HOUR, "", "rmse")][0] > 1.5 * got[(T0, "", "rmse")][0]
