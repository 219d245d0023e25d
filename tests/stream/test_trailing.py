"""Trailing baselines (``reference: {trailing: 3h}``, docs/statistics.md "Trailing baselines"):
each window compared with the merge of the model's stored windows of the span before it, on the
bins of its automatic reference or profile."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from river.datasets import synth

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.errors import StoreUnavailable
from drifthouse.profiles.build import profile_from_events
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message

MINUTE = 60_000
HOUR = 60 * MINUTE
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _event(i: int, ts: int, x: float, kind: str, version: str = "1") -> bytes:
    return json.dumps(
        {"model": "m", "model_version": version, "ts": ts, "event_id": f"e{i}",
         "prediction": min(max(x / 10, 0.0), 1.0), "segment": {"country": ["DE", "FR"][i % 2]},
         "features": {"x": x, "kind": kind}}
    ).encode()  # fmt: skip


def _hourly(hours: int, per_hour: int) -> list[tuple[int, float, str]]:
    """``(ts, x, kind)``: x centred on 2 + hour, kind drifting from ``a`` to ``b``."""
    rng = np.random.default_rng(5)
    out = []
    for h in range(hours):
        for k in range(per_hour):
            ts = START + h * HOUR + k * (HOUR // per_hour)
            kind = "b" if rng.random() < h / hours else "a"
            out.append((ts, float(rng.normal(2 + h, 1.5)), kind))
    return out


def _run(
    events: Sequence[tuple[int, float, str]],
    model: dict[str, Any],
    *,
    versions: Sequence[str] = ("1",),
    windows: Sequence[dict[str, Any]] = ({"size": "1h"},),
    batch: int = 50,
) -> tuple[Pipeline, MemorySink]:
    config = Config.model_validate({"windows": list(windows), "models": {"m": model}, "rules": []})
    sink = MemorySink()
    pipe = Pipeline(config=config, profiles={}, sink=sink, dead_letters=MemoryDeadLetters(),
                    run_id="r", computed_at=lambda: 0)  # fmt: skip
    messages = [
        Message(_event(i, ts, x, kind, versions[i % len(versions)]), 0, i)
        for i, (ts, x, kind) in enumerate(events)
    ]
    for lo in range(0, len(messages), batch):
        pipe.process(messages[lo : lo + batch])
    pipe.finish()
    sink.flush()
    return pipe, sink


def _rows(sink: MemorySink, metric: str, feature: str = "x", segment: str = "") -> dict[int, float]:
    return {
        (r.window_start - START) // HOUR: r.value
        for r in sink.rows("metrics")
        if (r.window, r.feature, r.metric, r.segment, r.model_version)
        == ("1h", feature, metric, segment, "1")
    }


def _hand_psi(ref: np.ndarray, cur: np.ndarray, eps: float) -> float:
    p, q = np.maximum(ref / ref.sum(), eps), np.maximum(cur / cur.sum(), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def test_trailing_psi_is_psi_against_the_merged_previous_windows_computed_by_hand() -> None:
    events = _hourly(6, 60)
    pipe, sink = _run(events, {"reference": {"trailing": "3h", "min_events": 10}})
    profile = pipe.sketch_for("m").profile
    assert profile is not None  # the automatic reference: the bins
    x = next(f for f in profile.numeric if f.name == "x")
    edges, eps = np.asarray(x.psi_edges), profile.settings.eps
    kind = next(f for f in profile.categorical if f.name == "kind")

    def hist(lo: int, hi: int) -> np.ndarray:
        v = np.asarray([e[1] for e in events if START + lo * HOUR <= e[0] < START + hi * HOUR])
        return np.bincount(np.searchsorted(edges, v, side="right"), minlength=edges.size + 1)

    psi = _rows(sink, "psi")
    assert 0 not in psi  # the first window has no earlier window: no drift rows
    for h in range(1, 6):
        expected = _hand_psi(
            hist(max(0, h - 3), h).astype(float), hist(h, h + 1).astype(float), eps
        )
        assert psi[h] == pytest.approx(expected, rel=1e-12, abs=1e-15), h
    # Quality rows are written whatever the baseline.
    assert set(_rows(sink, "count")) == set(range(6))
    # Categories: chi2's p-value against the merged hours before, by hand from the counts.
    cats = list(kind.categories)

    def counts(lo: int, hi: int) -> np.ndarray:
        c = [e[2] for e in events if START + lo * HOUR <= e[0] < START + hi * HOUR]
        return np.asarray([c.count(k) for k in cats] + [sum(v not in cats for v in c)], float)

    for h in range(1, 6):
        got = _rows(sink, "psi", feature="kind")[h]
        assert got == pytest.approx(_hand_psi(counts(max(0, h - 3), h), counts(h, h + 1), eps))


def test_a_baseline_below_the_floor_gives_no_drift_rows() -> None:
    _pipe, sink = _run(_hourly(5, 60), {"reference": {"trailing": "3h", "min_events": 100}})
    # 60 events an hour: one hour before is below the floor, two are not.
    assert sorted(_rows(sink, "psi")) == [2, 3, 4]
    assert sorted(_rows(sink, "ks_pvalue")) == [2, 3, 4]
    assert sorted(_rows(sink, "ks_qvalue")) == [2, 3, 4]
    assert sorted(_rows(sink, "psi", feature="__prediction__")) == [2, 3, 4]
    assert sorted(_rows(sink, "mean")) == [0, 1, 2, 3, 4]
    # Importance is the window's own; its shift compares with the baseline's importance.
    assert sorted(_rows(sink, "importance")) == [0, 1, 2, 3, 4]
    assert sorted(_rows(sink, "importance_shift", feature="")) == [2, 3, 4]


def test_the_prediction_and_its_segments_compare_with_the_trailing_prediction() -> None:
    _, sink = _run(_hourly(5, 60), {"reference": {"trailing": "2h", "min_events": 10}})
    _, fixed = _run(_hourly(5, 60), {"reference": "auto"})
    model = _rows(sink, "psi", feature="__prediction__")
    segment = _rows(sink, "psi", feature="__prediction__", segment="country=DE")
    assert sorted(model) == sorted(segment) == [1, 2, 3, 4]
    # x moves one unit an hour: against the hours just before, the prediction moves less than
    # against the first hour, for the model and for each segment value.
    far = _rows(fixed, "psi", feature="__prediction__")
    far_segment = _rows(fixed, "psi", feature="__prediction__", segment="country=DE")
    assert model[4] < far[4]
    assert segment[4] < far_segment[4]


def test_every_version_of_the_model_is_in_the_baseline() -> None:
    """Two versions serve the model: each window of each version is compared with the merge of
    both versions' windows before it (a new version is compared with what the old one saw)."""
    events = _hourly(4, 60)
    _, sink = _run(events, {"reference": {"trailing": "1h", "min_events": 10}}, versions=("1", "2"))
    one = {
        (r.model_version, (r.window_start - START) // HOUR): r
        for r in sink.rows("metrics")
        if (r.window, r.feature, r.metric, r.segment) == ("1h", "x", "psi", "")
    }
    assert sorted(one) == [(v, h) for v in ("1", "2") for h in (1, 2, 3)]
    assert all(r.n == 30 for r in one.values())


def _profile(events: Sequence[tuple[int, float, str]]) -> Profile:
    raw = [json.loads(_event(i, ts, x, k)) for i, (ts, x, k) in enumerate(events)]
    return profile_from_events(
        raw, model="m", model_version="1", created_at="2026-01-01T01:00:00.000Z", source_digest=""
    )


def test_a_trailing_baseline_on_a_profile_file_uses_its_bins(tmp_path: Any) -> None:
    events = _hourly(4, 60)
    profile = _profile(events[:60])
    config = Config.model_validate(
        {"models": {"m": {"reference": {"trailing": "1h", "profile": "m.json",
                                        "min_events": 10}}}, "rules": []}
    )  # fmt: skip
    assert config.auto_reference_span("m") is None
    sink = MemorySink()
    pipe = Pipeline(config=config, profiles={"m": profile}, sink=sink,
                    dead_letters=MemoryDeadLetters(), run_id="r", computed_at=lambda: 0)  # fmt: skip
    pipe.process([Message(_event(i, ts, x, k), 0, i) for i, (ts, x, k) in enumerate(events)])
    pipe.finish()
    sink.flush()
    psi = _rows(sink, "psi")
    assert sorted(psi) == [1, 2, 3]
    # The same bins and trailing hours as a run on the automatic reference built from hour 0.
    _, auto = _run(events, {"reference": {"trailing": "1h", "min_events": 10}})
    assert psi == _rows(auto, "psi")


def test_batching_does_not_change_a_digit() -> None:
    events = _hourly(6, 60)
    model = {"reference": {"trailing": "2h", "min_events": 10}}
    _, a = _run(events, model, batch=7)
    _, b = _run(events, model, batch=500)
    fields = ("window", "window_start", "model_version", "feature", "segment", "metric", "bin")
    rows_a = sorted((tuple(getattr(r, f) for f in fields), r.value) for r in a.rows("metrics"))
    rows_b = sorted((tuple(getattr(r, f) for f in fields), r.value) for r in b.rows("metrics"))
    assert rows_a == rows_b


def _rbf(hours: int, per_hour: int, *, step_at: int | None) -> list[tuple[int, float, str]]:
    """river's RandomRBFDrift: centroids that move a little with every event (a slow drift of
    the features); from hour ``step_at`` on, ``x`` jumps by 0.5 (a sudden step)."""
    gen = synth.RandomRBFDrift(seed_model=7, seed_sample=7, n_classes=2, n_features=3,
                               n_centroids=2, change_speed=0.0002, n_drift_centroids=2)  # fmt: skip
    out = []
    for i, (x, _y) in enumerate(gen.take(hours * per_hour)):
        h = i // per_hour
        ts = START + h * HOUR + (i % per_hour) * (HOUR // per_hour)
        shift = 0.5 if step_at is not None and h >= step_at else 0.0
        out.append((ts, float(x[0]) + shift, "ab"[int(x[1] > 0.5)]))
    return out


def test_a_slow_drift_is_quiet_on_a_trailing_baseline_and_a_step_still_fires() -> None:
    hours, step = 30, 24
    slow = _rbf(hours, 360, step_at=None)
    stepped = _rbf(hours, 360, step_at=step)
    trailing = {"reference": {"trailing": "3h"}}
    threshold = 0.25  # the shipped data-drift rule's PSI threshold
    fixed_psi = _rows(_run(slow, {"reference": "auto"}, batch=500)[1], "psi")
    trail_psi = _rows(_run(slow, trailing, batch=500)[1], "psi")
    step_psi = _rows(_run(stepped, trailing, batch=500)[1], "psi")
    fixed_alarms = sorted(h for h, v in fixed_psi.items() if v >= threshold)
    trail_alarms = sorted(h for h, v in trail_psi.items() if v >= threshold)
    # Against the first hour, the slow drift is flagged in most windows; against the three hours
    # before each window, in none.
    assert len(fixed_alarms) >= 0.6 * (hours - 1), fixed_psi
    assert trail_alarms == [], trail_psi
    # The step fires in the window it starts in, on a trailing baseline too.
    assert step_psi[step] >= threshold, step_psi
    assert all(step_psi[h] == trail_psi[h] for h in range(1, step))


def _messages(events: Sequence[tuple[int, float, str]], partition: int = 0) -> list[Message]:
    return [Message(_event(i, ts, x, k), partition, i) for i, (ts, x, k) in enumerate(events)]


def _drift(sink: MemorySink) -> list[tuple[Any, ...]]:
    return sorted(
        (r.window, r.window_start, r.model_version, r.feature, r.segment, r.metric, r.bin, r.value)
        for r in sink.rows("metrics")
        if r.metric in {"psi", "kl", "ks", "ks_pvalue", "js", "chi2", "psi_contribution"}
    )


def test_a_merger_resumed_from_its_snapshot_reads_the_baseline_back_from_the_store() -> None:
    """A new merger knows no earlier window: it reads their stored states back, and writes the
    digits of the one that never stopped."""
    from drifthouse.app.assembly import RunParts

    config = Config.model_validate(
        {"models": {"m": {"reference": {"trailing": "3h", "min_events": 10}}}, "rules": []}
    )
    messages = _messages(_hourly(7, 60))

    def run(cut: int | None, *, store_away: bool = False) -> list[tuple[Any, ...]]:
        parts = RunParts.of(config, {})
        sink = MemorySink()
        stage = parts.partition_stage(0, MemoryDeadLetters())
        merge = parts.merge_stage(sink, run_id="r", computed_at=lambda: 0)
        for lo in range(0, len(messages), 30):
            if cut is not None and lo == cut:
                snapshot = merge.snapshot()
                merge = parts.merge_stage(sink, run_id="r", computed_at=lambda: 0)
                merge.restore_snapshot(snapshot)
                if store_away:  # the first read of the stored hours fails: hour 4 waits
                    sink.fail_next.append(StoreUnavailable("the store is away"))
            merge.add(stage.process(messages[lo : lo + 30]))
            merge.watermark(0, stage.watermark)
            armed = bool(sink.fail_next)
            written = merge.emit()
            if armed and not sink.fail_next:  # this emit's read failed: its window waits
                assert not [w for w in written if w.spec.name == "1h"]
                assert merge.pending_keys()  # held, not lost
                held.append(lo)
        merge.add(stage.finish())
        merge.emit(final=True)
        sink.flush()
        assert len(held) == store_away
        return _drift(sink)

    held: list[int] = []
    whole = run(None)
    assert len({r[1] for r in whole}) == 6
    assert run(270) == whole  # mid-way through hour 4: its three hours before are stored
    assert run(270, store_away=True) == whole  # written once the store is back


def test_a_base_window_rewritten_late_rewrites_the_windows_it_is_a_baseline_of() -> None:
    """Partition 1 is idle while partition 0 writes hours 0-5; it then delivers events of hour
    2: hour 2 is rewritten, and so are hours 3 and 4 (their 2h baselines hold hour 2), to the
    rows of a run where partition 1 was never idle. (On a profile file: an automatic reference
    is built without what an idle partition holds back, docs/configuration.md.)"""
    model = {"reference": {"trailing": "2h", "min_events": 10, "profile": "m.json"}}
    hourly = _hourly(6, 60)
    early = _messages(hourly, 0)
    late = [
        Message(_event(1000 + k, START + 2 * HOUR + k * MINUTE, 20.0 + k, "b"), 1, k)
        for k in range(40)
    ]
    config = Config.model_validate({"models": {"m": model}, "rules": []})

    def pipeline() -> tuple[Pipeline, MemorySink]:
        sink = MemorySink()
        pipe = Pipeline(config=config, profiles={"m": _profile(hourly[:60])}, sink=sink,
                        dead_letters=MemoryDeadLetters(), run_id="r", computed_at=lambda: 0)  # fmt: skip
        pipe.expect_partitions([0, 1])
        return pipe, sink

    idle, idle_sink = pipeline()
    idle.mark_idle(1)
    for lo in range(0, len(early), 60):
        idle.process(early[lo : lo + 60])
    idle_sink.flush()
    before = _rows(idle_sink, "psi")
    assert sorted(before) == [1, 2, 3, 4]  # hour 5 waits for the end
    idle.mark_idle(1, False)
    idle.process(late)
    idle.finish()
    idle_sink.flush()

    steady, steady_sink = pipeline()
    steady.process(late)
    for lo in range(0, len(early), 60):
        steady.process(early[lo : lo + 60])
    steady.finish()
    steady_sink.flush()
    after = _rows(idle_sink, "psi")
    assert after == _rows(steady_sink, "psi")
    assert after[2] != before[2]  # rewritten with its own events
    assert after[3] != before[3]
    assert after[4] != before[4]  # baselines holding hour 2
    assert after[1] == before[1]  # before hour 2: as it was
    assert _drift(idle_sink) == _drift(steady_sink)


def test_a_derived_window_is_compared_with_the_base_windows_before_it(tmp_path: Any) -> None:
    """``{size: 3h, from: 1h}`` on a trailing baseline: the same PSI as the 3h window kept in
    the stream (counts merge exactly)."""
    events = _hourly(9, 60)
    model = {"reference": {"trailing": "3h", "min_events": 10}}

    def psi(long: dict[str, Any]) -> dict[int, float]:
        _, sink = _run(events, model, windows=({"size": "1h"}, long))
        return {
            (r.window_start - START) // HOUR: r.value
            for r in sink.rows("metrics")
            if (r.window, r.feature, r.metric, r.segment) == ("3h", "x", "psi", "")
        }

    derived = psi({"size": "3h", "from": "1h"})
    assert sorted(derived) == [3, 6]  # the first 3h has no window before it
    assert derived == pytest.approx(psi({"size": "3h"}), rel=1e-12)


def test_a_window_off_the_base_grid_is_compared_with_the_base_windows_wholly_before_it() -> None:
    """``30m/10m`` windows beside ``1h`` base windows, ``trailing: 2h``: the window starting at
    02:10 is compared with hour 01:00 alone (hour 00:00 starts before 00:10)."""
    events = _hourly(4, 60)
    pipe, sink = _run(events, {"reference": {"trailing": "2h", "min_events": 10}},
                      windows=({"size": "1h"}, {"size": "30m", "hop": "10m"}))  # fmt: skip
    profile = pipe.sketch_for("m").profile
    assert profile is not None
    edges = np.asarray(next(f for f in profile.numeric if f.name == "x").psi_edges)

    def hist(lo: int, hi: int) -> np.ndarray:
        v = np.asarray([e[1] for e in events if START + lo <= e[0] < START + hi])
        return np.bincount(np.searchsorted(edges, v, side="right"), minlength=edges.size + 1)

    start = 2 * HOUR + 10 * MINUTE
    got = next(
        r.value
        for r in sink.rows("metrics")
        if (r.window, r.window_start, r.feature, r.metric, r.segment)
        == ("30m/10m", START + start, "x", "psi", "")
    )
    expected = _hand_psi(
        hist(HOUR, 2 * HOUR).astype(float),
        hist(start, start + 30 * MINUTE).astype(float),
        profile.settings.eps,
    )
    assert got == pytest.approx(expected, rel=1e-12)
