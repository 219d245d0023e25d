"""The pipeline end to end in memory: exactness under batch cuts, partitions and disorder,
dead letters, lateness, and agreement with a naive computation."""

from __future__ import annotations

import json
import random
import zlib
from collections import Counter

import numpy as np
import pytest

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.detectors import stats
from drifthouse.detectors.typed_decode import TypedDecoders
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z: the decoders refuse times before 2000
CONFIG = Config.model_validate(
    {
        "windows": [{"size": "1h"}, {"size": "30m", "hop": "10m"}],
        "metrics": {"allowed_lateness": "30s"},
    }
)


def _run(profiles, messages, *, batch=1024, config=CONFIG):
    sink, dead = MemorySink(), MemoryDeadLetters()
    pipe = Pipeline(
        config=config,
        profiles=profiles,
        sink=sink,
        dead_letters=dead,
        run_id="t",
        computed_at=lambda: 0,
    )
    pipe.expect_partitions({m.partition for m in messages})
    for lo in range(0, len(messages), batch):
        pipe.process(messages[lo : lo + batch])
    pipe.finish()
    sink.flush()
    return sink, dead, pipe


def _metrics(sink):
    return {r.key(): (r.value, r.n) for r in sink.rows("metrics")}


def _messages(records, partitions=1):
    out = []
    offsets = Counter()
    for r in records:
        # Partition by a stable hash of the event id, as a keyed producer would spread load.
        p = zlib.crc32(json.loads(r.value)["event_id"].encode()) % partitions
        out.append(Message(r.value, p, offsets[p], "predictions", r.key))
        offsets[p] += 1
    return out


def test_batch_cuts_change_no_digit(small_stream):
    msgs = _messages(small_stream.records)
    a = _metrics(_run(small_stream.profiles, msgs, batch=4096)[0])
    b = _metrics(_run(small_stream.profiles, msgs, batch=37)[0])
    assert a.keys() == b.keys()
    assert a == b  # bit for bit, floats included


def test_the_fast_decode_changes_no_digit(small_stream, monkeypatch):
    """Events that fit their model's reference decode on a fast path (typed_decode): every row
    and every dead letter is the same as with the general decoder alone."""
    msgs = _messages(small_stream.records, partitions=2)
    fast_sink, fast_dead, _ = _run(small_stream.profiles, msgs, batch=700)
    monkeypatch.setattr(TypedDecoders, "decoder", lambda self, model: None)
    sink, dead, _ = _run(small_stream.profiles, msgs, batch=700)
    assert _metrics(fast_sink) == _metrics(sink)
    assert fast_sink.rows("predictions") == sink.rows("predictions")
    assert fast_dead.letters == dead.letters


def test_partition_interleaving_changes_no_digit(small_stream):
    """Scale-out: the same partitions consumed in different interleavings give identical rows."""
    msgs = _messages(small_stream.records, partitions=3)
    by_part = {p: [m for m in msgs if m.partition == p] for p in range(3)}
    rng = random.Random(5)
    shuffled = []
    cursors = dict.fromkeys(by_part, 0)
    while any(cursors[p] < len(by_part[p]) for p in by_part):
        p = rng.choice([p for p in by_part if cursors[p] < len(by_part[p])])
        take = rng.randint(1, 300)
        shuffled.extend(by_part[p][cursors[p] : cursors[p] + take])
        cursors[p] += take
    a = _metrics(_run(small_stream.profiles, msgs, batch=500)[0])
    b = _metrics(_run(small_stream.profiles, shuffled, batch=333)[0])
    assert a == b


def test_partitions_merge_to_the_single_stream_counts(small_stream):
    one = _metrics(_run(small_stream.profiles, _messages(small_stream.records))[0])
    three = _metrics(_run(small_stream.profiles, _messages(small_stream.records, partitions=3))[0])
    # Lateness is judged per partition, so compare where no event was late in either run.
    assert one.keys() == three.keys()
    for key, (value, n) in one.items():
        other, n3 = three[key]
        assert n == n3
        # Counts and everything built on them are exact; mean and std differ only by float
        # summation order across partitions.
        assert other == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_window_counts_and_psi_match_a_naive_computation(small_stream):
    sink, _, _ = _run(small_stream.profiles, _messages(small_stream.records))
    events = [json.loads(r.value) for r in small_stream.records]
    ts = np.array([r.ts_ms for r in small_stream.records])
    rows = {
        (r.model, r.window, r.window_start, r.feature, r.metric): r
        for r in sink.rows("metrics")
        if r.segment == ""
    }
    profile = small_stream.profiles["fraud"]
    feature = profile.feature("amount")
    for start in range(small_stream.scenario.start_ms, small_stream.scenario.end_ms, HOUR):
        sel = [
            e
            for e, t in zip(events, ts, strict=True)
            if start <= t < start + HOUR and e["model"] == "fraud"
        ]
        assert rows[("fraud", "1h", start, "", "events")].value == len(sel)
        values = np.array([e["features"]["amount"] for e in sel])
        fine = np.bincount(
            np.searchsorted(feature.edges, values, side="right"), minlength=len(feature.edges) + 1
        )
        coarse = np.bincount(
            np.searchsorted(feature.psi_edges, values, side="right"),
            minlength=len(feature.psi_edges) + 1,
        )
        want_psi = stats.psi(ref_counts=np.array(feature.psi_counts), cur_counts=coarse)
        got = rows[("fraud", "1h", start, "amount", "psi")].value
        assert got == pytest.approx(want_psi, rel=1e-12)
        d, _ = stats.ks_binned(ref_counts=np.array(feature.counts), cur_counts=fine)
        assert rows[("fraud", "1h", start, "amount", "ks")].value == pytest.approx(d, rel=1e-12)
        assert rows[("fraud", "1h", start, "amount", "mean")].value == pytest.approx(
            values.mean(), rel=1e-12
        )


def test_sliding_window_equals_merge_of_its_panes(small_stream):
    sink, _, _ = _run(small_stream.profiles, _messages(small_stream.records))
    rows = sink.rows("metrics")
    ten = {
        (r.window_start, r.model): r.value
        for r in rows
        if r.window == "30m/10m" and r.metric == "events" and r.segment == ""
    }
    ts_by_model = Counter()
    for r in small_stream.records:
        ts_by_model[(r.key.decode(), r.ts_ms // 600_000)] += 1
    for (start, model), value in ten.items():
        want = sum(ts_by_model[(model, start // 600_000 + k)] for k in range(3))
        assert value == want


SERVING = {
    "events", "throughput_rps", "latency_p50", "latency_p95", "latency_p99",
    "error_rate_4xx", "error_rate_5xx",
}  # fmt: skip
PREDICTION_DRIFT = {"psi", "ks", "ks_pvalue", "js", "chi2", "chi2_pvalue", "mean"}


def _serving(rows, model, segment):
    """A model's serving and prediction-drift rows of one segment, by window and metric."""
    return {
        (r.window, r.window_start, r.feature, r.metric): (r.value, r.n)
        for r in rows
        if r.model == model
        and r.segment == segment
        and (
            (r.feature == "" and r.metric in SERVING)
            or (r.feature == "__prediction__" and r.metric in PREDICTION_DRIFT)
        )
    }


def test_segment_rows_are_the_model_rows_of_that_segments_events(small_stream):
    """Per window, a segment value's rows are bit for bit the model-level rows of a run fed
    only the events holding that value (same partitions, other batch cuts)."""
    msgs = _messages(small_stream.records, partitions=2)
    rows = _run(small_stream.profiles, msgs, batch=500)[0].rows("metrics")
    assert not [r for r in rows if r.metric == "late_events" and r.value]
    values = Counter(
        (e["model"], name, value)
        for e in map(json.loads, (r.value for r in small_stream.records))
        for name, value in e.get("segment", {}).items()
    )
    assert {m for m, _, _ in values} == {"fraud", "eta"}
    checked = 0
    for model, name, value in sorted(values):
        subset = [m for m in msgs if json.loads(m.value).get("segment", {}).get(name) == value]
        alone = _run(small_stream.profiles, subset, batch=311)[0].rows("metrics")
        want = _serving(alone, model, "")
        got = _serving(rows, model, f"{name}={value}")
        assert got.keys() == want.keys(), (model, name, value)
        for key, (v, n) in want.items():
            assert got[key][1] == n, key
            assert got[key][0] == v or (np.isnan(v) and np.isnan(got[key][0])), key
        checked += len(got)
    assert checked > 1_000
    # Every event has one value per attribute: the values' events add up to the model's.
    for model, name in {(m, a) for m, a, _ in values}:
        total = Counter()
        for r in rows:
            if r.model == model and r.metric == "events" and r.segment.startswith(f"{name}="):
                total[(r.window, r.window_start)] += r.value
        model_events = _serving(rows, model, "")
        assert total == {
            (w, s): v for (w, s, _, metric), (v, _) in model_events.items() if metric == "events"
        }


def test_bad_input_is_dead_lettered_and_counted(small_stream):
    msgs = _messages(small_stream.records[:2000])
    bad = [
        Message(b"not json", 0, 0, "predictions", b"fraud"),
        Message(
            b'{"model": "fraud", "ts": "yesterday", "features": {}}', 0, 0, "predictions", None
        ),
        Message(
            b'{"model": "fraud", "ts": 1767225600000, "features": {"amount": [1, "x"]}}',
            0,
            0,
            "predictions",
            None,
        ),
    ]
    mixed = msgs[:500] + bad + msgs[500:]
    mixed = [Message(m.value, 0, i, m.topic, m.key) for i, m in enumerate(mixed)]
    sink, dead, pipe = _run(small_stream.profiles, mixed)
    assert [d.offset for d in dead.letters] == [500, 501, 502]
    assert {d.reason for d in dead.letters} == {"invalid_json", "schema"}
    assert dead.letters[2].path == "$.features.amount"
    invalid = sum(
        r.value for r in sink.rows("metrics") if r.metric == "invalid_events" and r.window == "1h"
    )
    assert invalid == 3
    assert pipe.stats.invalid == 3
    # Nothing else changed: every valid event is still counted.
    events = sum(
        r.value
        for r in sink.rows("metrics")
        if r.metric == "events" and r.window == "1h" and r.segment == ""
    )
    assert events == 2000


def test_late_events_are_dead_lettered_and_counted(small_stream):
    msgs = _messages(small_stream.records[:3000])
    late_raw = json.loads(small_stream.records[0].value)  # an event from the first minutes
    late = Message(json.dumps(late_raw).encode(), 0, 0, "predictions", b"fraud")
    mixed = [*msgs, late]
    mixed = [Message(m.value, 0, i, m.topic, m.key) for i, m in enumerate(mixed)]
    sink, dead, _ = _run(small_stream.profiles, mixed)
    assert [(d.reason, d.offset) for d in dead.letters] == [("late", 3000)]
    late_rows = [r for r in sink.rows("metrics") if r.metric == "late_events" and r.value > 0]
    assert {r.window for r in late_rows} == {"1h", "30m/10m"}
    assert all(r.model == late_raw["model"] for r in late_rows)


def test_disorder_within_lateness_gives_identical_results(small_stream):
    records = small_stream.records[:4000]
    rng = random.Random(11)
    # Swap neighbours that are less than the allowed lateness apart.
    jittered = sorted(records, key=lambda r: r.ts_ms + rng.randint(0, 29_000))
    a = _metrics(_run(small_stream.profiles, _messages(records))[0])
    b = _metrics(_run(small_stream.profiles, _messages(jittered))[0])
    assert a.keys() == b.keys()
    for key, (value, n) in a.items():
        assert b[key][1] == n
        assert b[key][0] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_injected_faults_show_up(small_stream):
    sink, _, _ = _run(small_stream.profiles, _messages(small_stream.records))
    rows = [r for r in sink.rows("metrics") if r.window == "1h"]
    ref_end = small_stream.scenario.reference_end_ms

    def worst(model, feature, metric, after):
        return max(
            r.value
            for r in rows
            if (r.model, r.feature, r.metric) == (model, feature, metric)
            and r.window_start >= after
        )

    def before(model, feature, metric):
        return max(
            r.value
            for r in rows
            if (r.model, r.feature, r.metric) == (model, feature, metric)
            and r.window_end <= ref_end
        )

    assert before("fraud", "device", "new_category") == 0
    assert worst("fraud", "device", "new_category", ref_end) > 0
    assert before("eta", "distance_km", "psi") < 0.1
    assert worst("eta", "distance_km", "psi", ref_end) > 0.25


def _restartable_run(profiles, msgs, crash_after, batch=400):
    """Run, 'crash' after each count in ``crash_after`` (losing everything not flushed), restart
    every partition from its checkpoint, and return the sink (shared, as the store is)."""
    sink = MemorySink()
    partitions = sorted({m.partition for m in msgs})
    by_part = {p: [m for m in msgs if m.partition == p] for p in partitions}
    checkpoints = {}
    snapshot = None
    position = 0
    index = {id(m): i for i, m in enumerate(msgs)}
    for stop in [*crash_after, len(msgs)]:
        pipe = Pipeline(
            config=CONFIG, profiles=profiles, sink=sink, dead_letters=MemoryDeadLetters(),
            run_id="t", computed_at=lambda: 0,
        )  # fmt: skip
        pipe.expect_partitions(partitions)
        for p, cp in checkpoints.items():
            pipe.stage(p).restore(cp)
        if snapshot is not None:  # the merge stage's own state, stored with the checkpoints
            pipe.merge.restore_snapshot(snapshot)
        # Re-read each partition from its checkpoint, then carry on to the next crash.
        replay = [
            m
            for p in partitions
            for m in by_part[p]
            if p in checkpoints and checkpoints[p].offset <= m.offset
        ]
        replay = [m for m in replay if index[id(m)] < position]
        todo = replay + msgs[position:stop]
        for lo in range(0, len(todo), batch):
            pipe.process(todo[lo : lo + batch])
        if stop == len(msgs):
            pipe.finish()
        sink.flush()  # what the sink confirmed survives the crash
        checkpoints = {p: pipe.checkpoint(p) for p in partitions}
        snapshot = pipe.merge.snapshot()
        position = stop
    return sink


def test_restart_from_checkpoints_gives_the_uninterrupted_rows(small_stream):
    msgs = _messages(small_stream.records, partitions=3)
    want = _metrics(_run(small_stream.profiles, msgs, batch=400)[0])
    rng = random.Random(2)
    crashes = sorted(rng.sample(range(1, len(msgs)), 6))
    got = _metrics(_restartable_run(small_stream.profiles, msgs, crashes))
    assert got.keys() == want.keys()
    assert got == want


def test_checkpoint_round_trips_as_commit_metadata(small_stream):
    msgs = _messages(small_stream.records[:3000], partitions=2)
    _, _, pipe = _run(small_stream.profiles, msgs[:2000])
    cp = pipe.checkpoint(0)
    assert type(cp).decode(cp.encode()) == cp
    assert cp.specs == ["1h", "30m/10m"]
    assert cp.clocks  # the models' clocks, for an exact restart
    assert cp.watermark is not None
    assert len(cp.encode()) < 4096  # Kafka's default offset.metadata.max.bytes
    # A checkpoint from before the clocks per model resumes with the watermark max_ts makes.
    old = type(cp).decode(f'[{cp.offset},{cp.max_ts},{cp.emitted_until},["1h","30m/10m"]]')
    assert (old.watermark, old.clocks) == (None, [])
    stage = Pipeline(
        config=CONFIG, profiles=small_stream.profiles, sink=MemorySink(),
        dead_letters=MemoryDeadLetters(),
    ).stage(0)  # fmt: skip
    stage.restore(old)
    assert stage.watermark == cp.max_ts - CONFIG.metrics.allowed_lateness


def test_class_label_predictions_get_categorical_prediction_drift():
    """A classifier that answers with class names: prediction drift by category counts."""
    from drifthouse.profiles.columns import build_profile

    rng = random.Random(3)
    classes_ref = ["cat", "dog", "bird"]
    profile = build_profile(
        model="animals", model_version="1", created_at="2026-01-01T00:00:00Z", source_digest="t",
        settings=CONFIG.metrics, features={"x": [rng.random() for _ in range(3000)]},
        prediction=[rng.choice(classes_ref) for _ in range(3000)],
    )  # fmt: skip
    assert profile.prediction is not None
    assert profile.prediction.kind == "categorical"
    msgs = []
    for i in range(600):
        # The second hour predicts 'dog' far more often, and a new class appears.
        label = rng.choice(classes_ref) if i < 300 else rng.choice(["dog", "dog", "dog", "fish"])
        event = {
            "model": "animals",
            "ts": T0 + i * 12_000,
            "features": {"x": rng.random()},
            "prediction": label,
        }
        msgs.append(Message(json.dumps(event).encode(), 0, i, "predictions", b"animals"))
    sink, _, _ = _run({"animals": profile}, msgs)
    rows = {
        (r.window_start, r.metric): r.value
        for r in sink.rows("metrics")
        if r.feature == "__prediction__" and r.window == "1h"
    }
    assert rows[(T0, "psi")] < 0.1
    assert rows[(T0 + HOUR, "psi")] > 1.0
    assert rows[(T0 + HOUR, "chi2_pvalue")] < 1e-6


def test_idle_partition_rewrites_a_written_window_and_late_partials_never_overwrite(small_stream):
    """A window written while a partition was idle is rewritten whole when that partition's
    share arrives; a share arriving after the window is final is dropped and counted, never
    written alone over the complete row."""
    from drifthouse.profiles.sketches import Sketches
    from drifthouse.stream.merge import MergeStage
    from drifthouse.stream.stage import PartitionStage
    from drifthouse.stream.windows import WindowSpec

    msgs = _messages(small_stream.records, partitions=2)
    specs = [WindowSpec.from_config(w) for w in CONFIG.windows]
    sketches = Sketches(small_stream.profiles, CONFIG.metrics)
    sink = MemorySink()
    merge = MergeStage(specs, sketches, sink, run_id="t", computed_at=lambda: 0)
    merge.expect([0, 1])
    stages = {p: PartitionStage(p, CONFIG, specs, sketches, MemoryDeadLetters()) for p in (0, 1)}
    half = {p: [m for m in msgs if m.partition == p] for p in (0, 1)}
    # Partition 1 is quiet and idle; partition 0 runs through the whole stream.
    merge.mark_idle(1)
    merge.add(stages[0].process(half[0]))
    merge.watermark(0, stages[0].watermark)
    merge.emit()
    sink.flush()
    first = {r.key(): r.value for r in sink.rows("metrics") if r.metric == "events"}
    # Partition 1 wakes up and delivers the first two hours: those windows are rewritten whole.
    early = [m for m in half[1] if json.loads(m.value)["ts"] < "2026-01-01T02:00"]
    merge.mark_idle(1, False)
    merge.add(stages[1].process(early))
    merge.add(stages[1].finish())
    merge.emit(final=True)
    sink.flush()
    rewritten = {r.key(): r.value for r in sink.rows("metrics") if r.metric == "events"}
    hour0 = next(
        k
        for k in first
        if k[0] == small_stream.scenario.start_ms and k[1] == "1h" and k[2] == "fraud"
    )
    want = sum(
        1 for m in msgs if m.key == b"fraud" and json.loads(m.value)["ts"] < "2026-01-01T01:00"
    )
    assert first[hour0] < want
    assert rewritten[hour0] == want
    # A share of a window long final (more than two window lengths behind) is dropped.
    before = merge.dropped_partials
    merge.mark_idle(0)
    late = stages[1].process([])  # nothing new: no partial
    assert late == []
    old_stage = PartitionStage(1, CONFIG, specs, sketches, MemoryDeadLetters())
    merge.restore_final_horizon(small_stream.scenario.end_ms + 3 * HOUR)  # every window is final
    merge.add(old_stage.process(early) + old_stage.finish())
    assert merge.dropped_partials > before
    assert merge.pending_keys() == set()


def test_prediction_log_keeps_every_error_and_samples_the_rest(small_stream):
    from drifthouse.sinks.predictions import PredictionLog

    config = Config.model_validate(
        {**CONFIG.model_dump(exclude={"base_dir"}), "models": {"fraud": {"sample_rate": 0.1}}}
    )
    sink, dead = MemorySink(), MemoryDeadLetters()
    pipe = Pipeline(
        config=config, profiles=small_stream.profiles, sink=sink, dead_letters=dead, run_id="t",
        computed_at=lambda: 0, prediction_log=PredictionLog(config.models),
    )  # fmt: skip
    msgs = _messages(small_stream.records)
    for lo in range(0, len(msgs), 500):
        pipe.process(msgs[lo : lo + 500])
    pipe.finish()
    sink.flush()
    logged = sink.rows("predictions")
    events = [json.loads(r.value) for r in small_stream.records]
    errors = {e["event_id"] for e in events if e.get("status", 200) >= 400}
    fraud = sum(1 for e in events if e["model"] == "fraud")
    assert errors <= {r.event_id for r in logged}
    routine = [r for r in logged if r.model == "fraud" and r.status < 400]
    assert 0.07 * fraud < len(routine) < 0.13 * fraud


def test_rules_see_windows_in_the_order_they_end_whatever_the_batch_cuts(small_stream):
    """A 1h window starts before the 30m windows inside it but ends after them: the rules (and
    the notifications, which follow event time) must get them by end, however the stream is
    cut, or the same alert is notified at a different moment live and in a replay."""
    from drifthouse.alerts import Alerting
    from drifthouse.alerts.base import MemoryReceiver

    config = Config.model_validate(
        {
            "windows": [{"size": "1h"}, {"size": "30m", "hop": "10m"}],
            "rules": [
                {"name": "drift", "metric": "psi", "when": "value > 0.25", "severity": "warning"}
            ],
            "routes": [{"receivers": ["mem"], "group_wait": 0, "group_interval": 0}],
            "receivers": {"mem": {"type": "console"}},
        }
    )
    msgs = _messages(small_stream.records, partitions=3)
    seen = {}
    for batch in (4096, 37):
        mem = MemoryReceiver()
        alerting = Alerting(config, receivers={"mem": mem})
        ends = []

        def rules(result, alerting=alerting, ends=ends):
            ends.append(result.end)
            alerting.process(result.metrics, watermark=result.end)

        sink, dead = MemorySink(), MemoryDeadLetters()
        pipe = Pipeline(config=config, profiles=small_stream.profiles, sink=sink,
                        dead_letters=dead, run_id="t", on_window=[rules])  # fmt: skip
        pipe.expect_partitions(range(3))
        for lo in range(0, len(msgs), batch):
            pipe.process(msgs[lo : lo + batch])
        pipe.finish()
        alerting.close()
        assert ends == sorted(ends)
        seen[batch] = [(n.ts, n.kind, sorted(a.dedup_key for a in n.alerts)) for n in mem.sent]
    assert seen[4096], "the stream's drift should be notified"
    assert seen[4096] == seen[37]


def test_an_empty_idle_partition_does_not_hold_windows_back(small_stream):
    """Every partition idle, one of them never having had an event: windows go by the
    watermarks of the partitions that have data."""
    from drifthouse.profiles.sketches import Sketches
    from drifthouse.stream.merge import MergeStage
    from drifthouse.stream.stage import PartitionStage
    from drifthouse.stream.windows import WindowSpec

    specs = [WindowSpec.from_config(w) for w in CONFIG.windows]
    sketches = Sketches(small_stream.profiles, CONFIG.metrics)
    merge = MergeStage(specs, sketches, MemorySink(), run_id="t", computed_at=lambda: 0)
    merge.expect([0, 1])
    stage = PartitionStage(0, CONFIG, specs, sketches, MemoryDeadLetters())
    merge.add(stage.process(_messages(small_stream.records)))
    merge.watermark(0, stage.watermark)
    empty = PartitionStage(1, CONFIG, specs, sketches, MemoryDeadLetters())
    merge.watermark(1, empty.watermark)  # what the worker reports for a partition with no event
    merge.mark_idle(0)
    merge.mark_idle(1)
    assert merge.ready_until() == stage.watermark
    assert merge.emit()


@pytest.mark.parametrize(
    ("ahead_min", "late_fraud", "late_churn"),
    [
        # Inside max_future (1 h): churn's clock alone moves; fraud keeps the watermark where
        # its own events are, and nothing is late.
        pytest.param(50, 0, 0, id="one-model-50-minutes-ahead-blinds-nobody"),
        # Beyond it, fraud's clock no longer holds the watermark back: the watermark jumps
        # to churn's minute 150 and every later event of minutes 31..119 is late, each
        # counted in its own model's row of the window holding the largest time seen.
        pytest.param(120, 89, 89, id="two-hours-ahead-shows-as-late-events-per-model"),
    ],
)
def test_one_models_clock_does_not_make_the_others_late(ahead_min, late_fraud, late_churn):
    msgs = []
    for i in range(120):  # two models on one partition, an event each every minute
        for model in ("fraud", "churn"):
            # churn's producer clock jumps ahead once, at minute 30
            ts = T0 + (30 + ahead_min if (model, i) == ("churn", 30) else i) * 60_000
            event = {"model": model, "ts": ts, "features": {}}
            msgs.append(Message(json.dumps(event).encode(), 0, len(msgs), "predictions", None))
    config = Config.model_validate({"windows": [{"size": "1h"}]})
    for batch in (1, 7, 1024):  # however the stream is cut
        sink, dead, _ = _run({}, msgs, batch=batch, config=config)
        late = Counter()
        for r in sink.rows("metrics"):
            if r.metric == "late_events":
                late[r.model] += r.value
        assert (late["fraud"], late["churn"]) == (late_fraud, late_churn)
        assert dead.reasons().get("late", 0) == late_fraud + late_churn
        events = {r.model: 0 for r in sink.rows("metrics")}
        for r in sink.rows("metrics"):
            if r.metric == "events":
                events[r.model] += r.value
        assert events == {"fraud": 120 - late_fraud, "churn": 120 - late_churn}


def _change_stream():
    """Two partitions of one model's events: partition 0 serves in 10 ms for twelve hours,
    partition 1 in 5 s for the first four, so the p95 latency drops after four hours, and a
    window without partition 1's share never had it high."""
    msgs = []
    for p, latency, hours in ((0, 10.0, 12), (1, 5000.0, 4)):
        for i in range(hours * 60):
            event = {"model": "svc", "ts": T0 + i * 60_000 + p, "event_id": f"{p}-{i}",
                     "features": {}, "latency_ms": latency}  # fmt: skip
            msgs.append(Message(json.dumps(event).encode(), p, i, "predictions", b"svc"))
    return msgs


CHANGE_CONFIG = Config.model_validate(
    {
        "windows": [{"size": "1h"}],
        "metrics": {
            "allowed_lateness": "30s",
            "change_detection": {
                "series": ["latency_p95"],
                "warmup": 2,
                "ph_min_instances": 1,
                "ph_threshold": 5.0,
                "adwin_grace_period": 1,
                "adwin_min_window_length": 1,
            },
        },
    }
)


def _change_rows(sink):
    return {r.key(): (r.value, r.n) for r in sink.rows("metrics") if r.metric == "change_detected"}


def _change_merge():
    from drifthouse.profiles.sketches import Sketches
    from drifthouse.stream.merge import MergeStage
    from drifthouse.stream.stage import PartitionStage
    from drifthouse.stream.windows import WindowSpec

    specs = [WindowSpec.from_config(w) for w in CHANGE_CONFIG.windows]
    sketches = Sketches({}, CHANGE_CONFIG.metrics)
    sink = MemorySink()
    merge = MergeStage.from_config(
        CHANGE_CONFIG, {}, sketches, sink, run_id="t", computed_at=lambda: 0
    )
    merge.expect([0, 1])
    stages = {
        p: PartitionStage(p, CHANGE_CONFIG, specs, sketches, MemoryDeadLetters()) for p in (0, 1)
    }
    return merge, stages, sink


@pytest.mark.parametrize("restart", [False, True])
def test_change_rows_of_a_window_rewritten_after_an_idle_partition_wakes_equal_a_replay(restart):
    """Windows written while a partition was idle miss its share; when it wakes they are
    rewritten whole, and the change detectors must end up with the rows of a merge that never
    saw a partition idle (a replay), also when the merge restarts from a snapshot mid-way."""
    msgs = _change_stream()
    half = {p: [m for m in msgs if m.partition == p] for p in (0, 1)}
    # The replay: both partitions in full, none idle.
    merge, stages, sink = _change_merge()
    for p in (0, 1):
        merge.add(stages[p].process(half[p]) + stages[p].finish())
        merge.watermark(p, stages[p].watermark)
    merge.emit(final=True)
    sink.flush()
    replay = _change_rows(sink)
    assert any(v == 1.0 for v, _ in replay.values())  # the stream does change
    # Live: partition 1 is idle while partition 0 runs through its first 100 minutes (its
    # change rows wait for partition 1 at most one more window length past them).
    merge, stages, sink = _change_merge()
    merge.mark_idle(1)
    partials = stages[0].process([m for m in half[0] if m.offset < 100])
    merge.add(partials)
    merge.watermark(0, stages[0].watermark)
    merge.emit()
    if restart:  # a new merge resumes from the snapshot and reads the partials again
        snap, horizon = merge.snapshot(), merge.final_horizon
        merge2, _, sink2 = _change_merge()
        merge2.restore_snapshot(snap)
        merge2.restore_final_horizon(horizon)
        merge2.mark_idle(1)
        merge2.watermark(0, stages[0].watermark)
        merge2.add(partials)
        merge2.emit()
        sink.flush()
        sink2.write(sink.rows("metrics"))
        merge, sink = merge2, sink2
    sink.flush()
    assert _change_rows(sink) == {}  # partition 1 may still add to every window written
    # Partition 1 wakes with its share, all of it (its watermark passes the fourth hour), then
    # idles.
    merge.mark_idle(1, False)
    merge.add(stages[1].process(half[1]) + stages[1].finish())
    merge.watermark(1, stages[1].watermark)
    merge.emit()
    merge.mark_idle(1)
    merge.emit()
    sink.flush()
    passed = min(stages[0].watermark, stages[1].watermark)
    assert passed > T0 + HOUR
    assert _change_rows(sink) == {k: v for k, v in replay.items() if k[0] + HOUR <= passed}
    # Partition 0 ends: its later windows are written with partition 1 idle, then the end.
    merge.add(stages[0].process(half[0][100:]))
    merge.watermark(0, stages[0].watermark)
    merge.emit()
    merge.add(stages[0].finish())
    merge.emit(final=True)
    sink.flush()
    assert _change_rows(sink) == replay


def test_change_rows_wait_at_most_one_window_length_for_an_idle_partition():
    """A partition that stays idle (it never had an event here) holds no window back, and the
    change rows of the windows written meanwhile wait for its share at most one more window
    length: a live merger never reaches the stream's end, and change rows held until then would
    never be written (docs/metrics.md, change_detected)."""
    msgs = [m for m in _change_stream() if m.partition == 0]
    merge, stages, sink = _change_merge()
    merge.mark_idle(1)
    merge.add(stages[0].process(msgs))
    merge.watermark(0, stages[0].watermark)
    merge.emit()
    sink.flush()
    ready = merge.ready_until()
    starts = {k[0] for k in _change_rows(sink)}
    assert starts, "change rows held while partition 1 idles"
    assert max(starts) + 2 * HOUR <= ready < max(starts) + 3 * HOUR
