"""Label join and label windows: order, unknown and late labels, rewrites, snapshots."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.detectors.label_sketch import LabelSketch
from drifthouse.detectors.labels import binary_metrics
from drifthouse.events import EventDecoder, LabelEvent, PredictionEvent
from drifthouse.stream.labels import (
    JoinedPair,
    LabelJoin,
    LabelStage,
    LabelWindow,
    LabelWindows,
    PredictionRecord,
    decode_records,
    encode_records,
    sketch_for_model,
)
from drifthouse.stream.windows import WindowSpec
from tests.detectors.strategies import make_profile

HOUR = 3_600_000
DAY = 24 * HOUR


def rec(eid: str | None, ts: int, score: float = 0.7, **kw: object) -> PredictionRecord:
    return PredictionRecord(
        eid,
        str(kw.get("model", "m")),
        str(kw.get("version", "1")),
        ts,
        score,
        kw.get("cls"),  # type: ignore[arg-type]
        tuple(kw.get("segment", ())),  # type: ignore[arg-type]
    )


def lab(eid: str, ts: int, label: int | float | str = 1, model: str = "m") -> LabelEvent:
    return LabelEvent(event_id=eid, model=model, ts_ms=ts, label=label)


def _pairs(out: list[JoinedPair]) -> list[tuple[str | None, object]]:
    return [(p.prediction.event_id, p.label) for p in out]


# -- records -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "score", "cls"),
    [
        pytest.param(0.25, 0.25, None, id="score"),
        pytest.param(3, 3.0, None, id="integer"),
        pytest.param(True, math.nan, "true", id="bool"),
        pytest.param({"0": 0.2, "1": 0.8}, 0.8, None, id="two-class-probabilities"),
        pytest.param({"a": 0.2, "b": 0.5, "c": 0.3}, math.nan, "b", id="multiclass"),
        pytest.param("cat", math.nan, "cat", id="class-name"),
        pytest.param(None, math.nan, None, id="none"),
    ],
)
def test_record_from_event(prediction: object, score: float, cls: str | None) -> None:
    e = PredictionEvent(
        model="m",
        ts_ms=5,
        features={},
        event_id="e",
        prediction=prediction,  # type: ignore[arg-type]
        segment={"country": "DE", "app": "ios"},
    )
    r = PredictionRecord.from_event(e)
    assert (r.score == score) or (math.isnan(r.score) and math.isnan(score))
    assert r.pred_class == cls
    assert r.segment == (("app", "ios"), ("country", "DE"))
    wire = encode_records([r, r])
    assert encode_records(decode_records(wire)) == wire


# -- join --------------------------------------------------------------------------------------


def test_label_after_and_before_its_prediction() -> None:
    join = LabelJoin(horizon_ms=DAY)
    assert join.add_predictions([rec("a", 1_000)]) == []
    assert _pairs(join.add_labels([lab("a", 5 * HOUR)])) == [("a", 1)]
    assert join.add_labels([lab("b", 2_000, 0)]) == []  # early label: held
    assert _pairs(join.add_predictions([rec("b", 1_500)])) == [("b", 0)]
    assert join.stats.joined == 2
    assert join.stats.early == 1


def test_unknown_and_empty_ids_are_counted_not_fatal() -> None:
    join = LabelJoin(horizon_ms=HOUR)
    join.add_labels([lab("ghost", 1_000), lab("", 1_000)])
    assert join.stats.unmatched == 1  # the empty id at once
    join.add_predictions([rec("x", 2 * HOUR)])  # moves the clock: the ghost label expires
    assert join.stats.unmatched == 2
    assert [(d.event_id, d.reason) for d in join.take_dropped()] == [
        ("", "unmatched"),
        ("ghost", "unmatched"),
    ]
    assert join.take_dropped() == []


def test_expired_and_duplicate_labels() -> None:
    join = LabelJoin(horizon_ms=HOUR)
    join.add_predictions([rec("a", 10 * HOUR)])
    join.add_labels([lab("old", 1_000)])  # beyond the horizon already
    join.add_labels([lab("a", 10 * HOUR + 1), lab("a", 10 * HOUR + 2, 0)])
    assert join.stats.expired == 1
    assert join.stats.duplicate == 1
    reasons = [d.reason for d in join.take_dropped()]
    assert reasons == ["expired", "duplicate"]


def test_memory_is_bounded_by_the_horizon() -> None:
    join = LabelJoin(horizon_ms=HOUR)
    for i in range(10_000):
        join.add_predictions([rec(f"e{i}", i * 60_000)])  # one a minute for a week
    assert join.held("m") <= 61
    assert join.stats.evicted_predictions >= 10_000 - 61


def test_entry_cap() -> None:
    join = LabelJoin(horizon_ms=DAY, max_entries=100)
    join.add_predictions([rec(f"e{i}", i) for i in range(1_000)])
    assert join.held("m") == 100
    assert join.stats.over_cap == 900
    assert _pairs(join.add_labels([lab("e999", 2_000)])) == [("e999", 1)]


def test_labels_are_joined_per_model() -> None:
    join = LabelJoin()
    join.add_predictions([rec("a", 1, model="m1")])
    assert join.add_labels([lab("a", 2, model="m2")]) == []
    assert _pairs(join.add_labels([lab("a", 2, model="m1")])) == [("a", 1)]


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 40))
def test_any_interleaving_joins_the_same_pairs(rnd: object, n: int) -> None:
    items: list[tuple[str, object]] = [("p", rec(f"e{i}", i * 1000)) for i in range(n)]
    items += [("l", lab(f"e{i}", i * 1000 + 500, i % 2)) for i in range(0, n, 2)]
    items += [("l", lab(f"ghost{i}", i * 1000)) for i in range(3)]
    rnd.shuffle(items)  # type: ignore[attr-defined]
    join = LabelJoin(horizon_ms=DAY)
    got = []
    for kind, item in items:
        if kind == "p":
            got += join.add_predictions([item])  # type: ignore[list-item]
        else:
            got += join.add_labels([item])  # type: ignore[list-item]
    assert sorted(_pairs(got), key=str) == sorted(
        ((f"e{i}", i % 2) for i in range(0, n, 2)), key=str
    )
    assert join.stats.unmatched == 0  # ghosts are still held, within the horizon
    assert join.held("m") == n + 3 - 0


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["p", "l"]),
            st.sampled_from(["m", "n"]),
            st.sampled_from(["e0", "e1", "e2", "e3", "e4", "e5", ""]),
            st.integers(0, 3 * HOUR),
        ),
        max_size=80,
    ),
    st.lists(st.integers(0, 80), max_size=4),
)
def test_batches_join_as_one_item_at_a_time(
    items: list[tuple[str, str, str, int]], cuts: list[int]
) -> None:
    """Any cut of the input into batches gives the pairs, drops, counters and state of one
    item at a time: eviction by horizon and by cap, duplicates, unknown and empty ids."""
    typed: list[tuple[str, object]] = [
        (kind, rec(eid or None, ts, model=m) if kind == "p" else lab(eid, ts, 1, model=m))
        for kind, m, eid, ts in items
    ]

    def run(bounds: list[int]) -> tuple[object, ...]:
        join = LabelJoin(horizon_ms=HOUR, max_entries=3)
        pairs: list[JoinedPair] = []
        for lo, hi in itertools.pairwise(bounds):
            # A batch holds items of one kind: split each cut where the kind changes.
            for kind, group in itertools.groupby(typed[lo:hi], key=lambda t: t[0]):
                batch = [item for _, item in group]
                if kind == "p":
                    pairs += join.add_predictions(batch)  # type: ignore[arg-type]
                else:
                    pairs += join.add_labels(batch)  # type: ignore[arg-type]
        return pairs, join.take_dropped(), join.stats, join.to_bytes()

    one_by_one = run(list(range(len(typed) + 1)))
    assert run([0, *sorted(c for c in cuts if c <= len(typed)), len(typed)]) == one_by_one


def test_snapshot_resumes_exactly() -> None:
    rng = np.random.default_rng(0)
    events: list[tuple[str, object]] = []
    for i in range(3_000):
        ts = i * 60_000
        events.append(("p", rec(f"e{i}", ts, float(rng.random()))))
        j = int(rng.integers(0, i + 1))
        events.append(("l", lab(f"e{j}", ts, int(rng.integers(0, 2)))))
        if i % 97 == 0:
            events.append(("l", lab(f"ghost{i}", ts)))

    def run(join: LabelJoin, evs: list[tuple[str, object]]) -> list[tuple[str | None, object]]:
        out = []
        for kind, item in evs:
            res = join.add_predictions([item]) if kind == "p" else join.add_labels([item])  # type: ignore[list-item]
            out += _pairs(res)
        return out

    straight_join = LabelJoin(horizon_ms=6 * HOUR)
    straight = run(straight_join, events)
    first = LabelJoin(horizon_ms=6 * HOUR)
    head = run(first, events[:2_500])
    restored = LabelJoin.from_bytes(first.to_bytes())
    tail = run(restored, events[2_500:])
    assert head + tail == straight
    assert vars(restored.stats) == vars(straight_join.stats)
    assert restored.to_bytes() == straight_join.to_bytes()


# -- windows -----------------------------------------------------------------------------------

SPECS = [WindowSpec.tumbling(HOUR), WindowSpec(HOUR, 15 * 60_000)]
SK = LabelSketch(task="classification", threshold=0.5, bins=100)


def _windows() -> LabelWindows:
    return LabelWindows(SPECS, lambda model: SK, horizon_ms=DAY)


def _metrics(lw: LabelWindows, w: LabelWindow) -> dict[tuple[str, str], float]:
    return {(seg, r.metric): r.value for seg, r in lw.evaluate(w)}


def test_late_label_rewrites_its_window() -> None:
    lw, join = _windows(), LabelJoin(horizon_ms=DAY)
    preds = [rec(f"e{i}", i * 60_000, score=0.9 if i % 2 else 0.1) for i in range(60)]
    lw.add_predictions(preds)
    join.add_predictions(preds)
    lw.add_pairs(join.add_labels([lab(f"e{i}", HOUR + i, i % 2) for i in range(30)]))
    first = [w for w in lw.flush(ready_until=HOUR) if w.spec_index == 0]
    assert [(w.start, w.rewrite) for w in first] == [(0, False)]
    v = _metrics(lw, first[0])
    assert v[("", "accuracy")] == 1.0
    assert v[("", "labels_coverage")] == 0.5
    assert lw.flush(ready_until=HOUR) == []  # nothing changed: nothing to write
    # A day later the rest of the labels come, all wrong: the window is rewritten.
    lw.add_pairs(join.add_labels([lab(f"e{i}", DAY - 1, 1 - i % 2) for i in range(30, 60)]))
    again = [w for w in lw.flush(ready_until=HOUR) if w.spec_index == 0]
    assert [(w.start, w.rewrite) for w in again] == [(0, True)]
    v = _metrics(lw, again[0])
    assert v[("", "accuracy")] == 0.5
    assert v[("", "labels_coverage")] == 1.0
    # The rewrite is the same rows whatever was written before: a fresh run agrees.
    fresh, join2 = _windows(), LabelJoin(horizon_ms=DAY)
    fresh.add_predictions(preds)
    join2.add_predictions(preds)
    fresh.add_pairs(join2.add_labels([lab(f"e{i}", HOUR + i, i % 2) for i in range(30)]))
    fresh.add_pairs(join2.add_labels([lab(f"e{i}", DAY - 1, 1 - i % 2) for i in range(30, 60)]))
    (once,) = [w for w in fresh.flush() if w.spec_index == 0 and w.start == 0]
    assert _metrics(fresh, once) == v


def test_windows_wait_for_ready_until() -> None:
    lw = _windows()
    lw.add_predictions([rec("a", 10)])
    assert lw.flush(ready_until=15 * 60_000 - 1) == []
    # The first sliding window holding the pane [0, 15m) started 45 minutes before it.
    assert [(w.spec_index, w.start) for w in lw.flush(ready_until=15 * 60_000)] == [
        (1, -45 * 60_000)
    ]
    assert [(w.spec_index, w.start) for w in lw.flush(ready_until=HOUR)] == [
        (1, -30 * 60_000),
        (1, -15 * 60_000),
        (0, 0),
        (1, 0),
    ]


def test_sliding_windows_merge_their_panes_like_direct_computation() -> None:
    rng = np.random.default_rng(4)
    lw, join = _windows(), LabelJoin(horizon_ms=DAY)
    n = 2_000
    ts = np.sort(rng.integers(0, 4 * HOUR, n))
    y = rng.random(n) < 0.4
    s = np.clip(rng.normal(0.4 + 0.3 * y, 0.2), 0, 1)
    preds = [rec(f"e{i}", int(ts[i]), float(s[i])) for i in range(n)]
    lw.add_predictions(preds)
    join.add_predictions(preds)
    order = rng.permutation(n)
    lw.add_pairs(join.add_labels([lab(f"e{i}", 5 * HOUR, int(y[i])) for i in order]))
    for w in lw.flush():
        m = (ts >= w.start) & (ts < w.end)
        want = binary_metrics(y_true=y[m], score=s[m], threshold=0.5)
        got = _metrics(lw, w)
        for k in ("accuracy", "precision", "recall", "f1"):
            assert got[("", k)] == pytest.approx(want[k], abs=1e-12), (w.start, k)
        assert got[("", "roc_auc")] == pytest.approx(want["roc_auc"], abs=0.01)
        assert w.predictions() == int(m.sum())


def test_segments_and_fairness() -> None:
    lw, join = _windows(), LabelJoin(horizon_ms=DAY)
    preds = []
    for i in range(40):
        country = "DE" if i < 20 else "FR"
        # DE: every positive predicted positive; FR: half of them.
        score = 0.9 if (i % 2 == 0 and (country == "DE" or i % 4 == 0)) else 0.1
        preds.append(rec(f"e{i}", i, score, segment=[("country", country)]))
    lw.add_predictions(preds)
    join.add_predictions(preds)
    lw.add_pairs(join.add_labels([lab(f"e{i}", 100, int(i % 2 == 0)) for i in range(40)]))
    (w,) = [w for w in lw.flush() if w.spec_index == 0]
    v = _metrics(lw, w)
    assert v[("country=DE", "recall")] == 1.0
    assert v[("country=FR", "recall")] == 0.5
    assert v[("country", "equal_opportunity_diff")] == 0.5
    assert v[("country", "demographic_parity_diff")] == pytest.approx(0.5 - 0.25)
    assert v[("country=DE", "labels_coverage")] == 1.0


def test_fairness_gaps_raise_alerts_through_a_rule() -> None:
    # The gaps are metric rows like any other: a rule scoped to the attribute fires on them.
    from drifthouse.alerts.rules import RuleEngine, validate_rules
    from drifthouse.config import RuleConfig

    lw, join = _windows(), LabelJoin(horizon_ms=DAY)
    preds = [
        rec(f"e{i}", i, 0.9 if i % 2 == 0 and (i < 20 or i % 4 == 0) else 0.1,
            segment=[("country", "DE" if i < 20 else "FR")])
        for i in range(40)
    ]  # fmt: skip
    lw.add_predictions(preds)
    join.add_predictions(preds)
    lw.add_pairs(join.add_labels([lab(f"e{i}", 100, int(i % 2 == 0)) for i in range(40)]))
    (w,) = [w for w in lw.flush() if w.spec_index == 0]
    rows = lw.rows(w, run_id="live", computed_at=0)
    rules = [
        {"name": "opportunity-gap", "metric": "equal_opportunity_diff", "segment": "country",
         "when": "value > 0.2", "severity": "warning"},
        {"name": "parity-gap", "metric": "demographic_parity_diff", "segment": "country",
         "when": "value > 0.3", "severity": "warning"},
    ]  # fmt: skip
    configs = [RuleConfig.model_validate(r) for r in rules]
    assert validate_rules(configs) == []  # known metric names: not even a warning
    engine = RuleEngine(configs)
    alerts = engine.process(rows)
    # The opportunity gap is 0.5 (> 0.2); the parity gap 0.25 stays under its 0.3.
    assert [(a.rule, a.segment, a.value) for a in alerts] == [("opportunity-gap", "country", 0.5)]


def test_segment_values_are_capped() -> None:
    lw = LabelWindows(SPECS, lambda m: SK, max_segment_values=2)
    lw.add_predictions([rec(f"e{i}", i, segment=[("user", f"u{i}")]) for i in range(5)])
    (w,) = [w for w in lw.flush() if w.spec_index == 0]
    assert set(w.counters) == {"", "user=u0", "user=u1", "user=__other__"}
    assert w.predictions("user=__other__") == 3


def test_segment_attributes_are_capped_per_model() -> None:
    lw = LabelWindows(SPECS, lambda m: SK, max_segment_attributes=2)
    lw.add_predictions([rec(f"e{i}", i, segment=[(f"a{i}", "v"), ("kept", "v")]) for i in range(5)])
    (w,) = [w for w in lw.flush() if w.spec_index == 0]
    # the first two attributes the model named; later ones are not kept, not even as "other"
    assert set(w.counters) == {"", "a0=v", "kept=v"}
    assert w.predictions("kept=v") == 5
    # a restarted merger remembers which attributes it kept
    again = LabelWindows(SPECS, lambda m: SK, max_segment_attributes=2)
    again.restore(lw.to_bytes())
    again.add_predictions([rec("e9", 9, segment=[("late", "v"), ("a0", "v")])])
    (w,) = [w for w in again.flush() if w.spec_index == 0]
    assert "late=v" not in w.counters
    assert w.predictions("a0=v") == 2


def test_dropped_labels_are_counted_in_their_window() -> None:
    lw, join = _windows(), LabelJoin(horizon_ms=HOUR)
    join.add_labels([lab("ghost", 1_000), lab("", 2_000)])
    join.add_predictions([rec("x", 3 * HOUR)])
    lw.add_dropped(join.take_dropped())
    (w,) = [w for w in lw.flush() if w.spec_index == 0 and w.start == 0]
    assert _metrics(lw, w)[("", "labels_unmatched")] == 2.0
    assert w.model_version == "unknown"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=3))
def test_batch_cuts_give_bitwise_identical_states(cuts: list[int]) -> None:
    rng = np.random.default_rng(9)
    n = 200
    preds = [rec(f"e{i}", int(rng.integers(0, 2 * HOUR)), float(rng.random())) for i in range(n)]
    pairs = [JoinedPair(p, int(rng.integers(0, 2)), 3 * HOUR) for p in preds]
    whole = _windows()
    whole.add_pairs(pairs)
    bounds = [0, *sorted(cuts), n]
    cut = _windows()
    for lo, hi in itertools.pairwise(bounds):
        cut.add_pairs(pairs[lo:hi])
    a, b = whole.flush(), cut.flush()
    assert [(w.spec_index, w.start) for w in a] == [(w.spec_index, w.start) for w in b]
    for wa, wb in zip(a, b, strict=True):
        assert wa.states[""].equals(wb.states[""])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["m", "n"]),
            st.sampled_from(["1", "2"]),
            st.integers(-2 * HOUR, 3 * HOUR),
            st.lists(st.tuples(st.sampled_from(["c", "d"]), st.sampled_from("uvwxyz")), max_size=2),
        ),
        max_size=60,
    )
)
def test_counting_a_batch_at_once_equals_record_by_record(
    events: list[tuple[str, str, int, list[tuple[str, str]]]],
) -> None:
    """Predictions are counted per batch, grouped; the state is that of one record at a time,
    segment values over the cap included."""
    records = [
        rec(f"e{i}", ts, model=m, version=v, segment=sorted(dict(seg).items()))
        for i, (m, v, ts, seg) in enumerate(events)
    ]
    specs = [
        WindowSpec.tumbling(HOUR),
        WindowSpec(HOUR, 15 * 60_000),
        WindowSpec.tumbling(10 * 60_000),
    ]
    batch = LabelWindows(specs, lambda model: SK, horizon_ms=DAY, max_segment_values=3)
    single = LabelWindows(specs, lambda model: SK, horizon_ms=DAY, max_segment_values=3)
    batch.add_predictions(records)
    for r in records:
        single.add_predictions([r])
    assert batch.to_bytes() == single.to_bytes()
    joined, one_by_one = (
        LabelJoin(horizon_ms=HOUR, max_entries=20),
        LabelJoin(horizon_ms=HOUR, max_entries=20),
    )
    joined.add_labels([lab(f"e{i}", 0, model=m) for i, (m, *_) in enumerate(events) if i % 3 == 0])
    one_by_one.add_labels(
        [lab(f"e{i}", 0, model=m) for i, (m, *_) in enumerate(events) if i % 3 == 0]
    )
    pairs = joined.add_predictions(records)
    assert pairs == [p for r in records for p in one_by_one.add_predictions([r])]
    assert joined.to_bytes() == one_by_one.to_bytes()
    assert joined.take_dropped() == one_by_one.take_dropped()


def test_windows_snapshot_restores() -> None:
    lw, join = _windows(), LabelJoin(horizon_ms=DAY)
    preds = [rec(f"e{i}", i * 60_000, segment=[("c", "x")]) for i in range(120)]
    lw.add_predictions(preds)
    join.add_predictions(preds)
    lw.add_pairs(join.add_labels([lab(f"e{i}", 3 * HOUR, 1) for i in range(0, 120, 3)]))
    lw.flush(ready_until=HOUR)
    copy = _windows()
    copy.restore(lw.to_bytes())
    lw.add_pairs(join.add_labels([lab("e1", 3 * HOUR, 0)]))
    join2 = LabelJoin(horizon_ms=DAY)
    join2.add_predictions(preds)
    copy.add_pairs(join2.add_labels([lab("e1", 3 * HOUR, 0)]))
    a, b = lw.flush(), copy.flush()
    assert [(w.spec_index, w.start, w.rewrite) for w in a] == [
        (w.spec_index, w.start, w.rewrite) for w in b
    ]
    assert [_metrics(lw, w) for w in a] == [_metrics(copy, w) for w in b]


def test_old_panes_are_dropped_after_the_horizon() -> None:
    lw = _windows()
    lw.add_predictions([rec(f"e{i}", i * HOUR) for i in range(24 * 10)])  # ten days
    lw.flush()
    assert lw._clock == (24 * 10 - 1) * HOUR
    starts = {key[3] for key in lw._panes}
    assert min(starts) >= lw._clock - DAY - HOUR


def test_sketch_for_model_from_profile() -> None:
    p = make_profile({"x": np.arange(100.0)}, prediction=["a", "b"] * 50, label=["a", "b"] * 50)
    sk = sketch_for_model(p, threshold=0.7)
    assert sk.task == "classification"
    assert set(sk.classes.classes) == {"a", "b"}
    assert sketch_for_model(None, task="regression").task == "regression"


def test_decoded_labels_flow_through() -> None:
    dec = EventDecoder(LabelEvent)
    ok, bad = dec.decode_batch(
        [
            b'{"event_id": "a", "model": "m", "ts": "2026-01-01T00:00:00Z", "label": "true"}',
            b'{"event_id": "b", "model": "m", "ts": 5, "label": null}',
        ]
    )
    assert len(bad) == 1
    join = LabelJoin()
    join.add_predictions([rec("a", 1_767_225_000_000)])
    pairs = join.add_labels([e for _, e in ok])
    lw = _windows()
    lw.add_pairs(pairs)
    (w,) = [w for w in lw.flush() if w.spec_index == 0]
    assert _metrics(lw, w)[("", "recall")] == 1.0


def test_rewrites_are_spaced_in_event_time() -> None:
    lw = LabelWindows(SPECS[:1], lambda m: SK, rewrite_every_ms=HOUR)
    join = LabelJoin()
    preds = [rec(f"e{i}", i) for i in range(10)]
    lw.add_predictions(preds)
    join.add_predictions(preds)
    assert [w.rewrite for w in lw.flush(ready_until=HOUR)] == [False]
    lw.add_pairs(join.add_labels([lab("e0", HOUR + 1)]))
    assert lw.flush(ready_until=HOUR) == []  # written at clock 9 ms; too soon
    lw.add_pairs(join.add_labels([lab("e1", 2 * HOUR)]))
    (w,) = lw.flush(ready_until=HOUR)
    assert w.rewrite
    assert _metrics(lw, w)[("", "labels")] == 2.0
    lw.add_pairs(join.add_labels([lab("e2", 2 * HOUR + 1)]))
    assert lw.flush(ready_until=HOUR) == []
    assert [_metrics(lw, w)[("", "labels")] for w in lw.flush()] == [3.0]  # final: all


def test_rows_keep_their_keys_across_rewrites() -> None:
    lw, join = _windows(), LabelJoin()
    preds = [rec(f"e{i}", i, segment=[("c", "x" if i % 2 else "y")]) for i in range(10)]
    lw.add_predictions(preds)
    join.add_predictions(preds)
    lw.add_pairs(join.add_labels([lab(f"e{i}", HOUR, 1) for i in range(5)]))
    (w,) = [w for w in lw.flush() if w.spec_index == 0]
    first = lw.rows(w, run_id="live", computed_at=1)
    lw.add_pairs(join.add_labels([lab(f"e{i}", 2 * DAY, 0) for i in range(5, 10)]))
    (w2,) = [w for w in lw.flush() if w.spec_index == 0]
    second = lw.rows(w2, run_id="live", computed_at=2)
    assert {r.key() for r in first} <= {r.key() for r in second}
    by_key = {(r.segment, r.metric): r for r in second}
    assert by_key[("", "labels_coverage")].value == 1.0
    assert by_key[("", "labels_coverage")].n == 10
    assert by_key[("c=x", "labels")].n == 5
    assert by_key[("c", "demographic_parity_diff")].window == "1h"


def test_label_stage_from_config_snapshot_and_rows() -> None:
    from drifthouse.config import Config

    config = Config.model_validate(
        {"windows": [{"size": "1h"}], "models": {"m": {"threshold": 0.8}}}
    )

    def events(lo: int, hi: int) -> list[PredictionEvent]:
        return [
            PredictionEvent(
                model="m", ts_ms=i * 60_000, features={}, event_id=f"e{i}", prediction=0.7
            )
            for i in range(lo, hi)
        ]

    stage = LabelStage.from_config(config, profiles={})
    stage.add_predictions(events(0, 30))
    stage.add_labels([lab(f"e{i}", HOUR + i, 1) for i in range(0, 30, 2)])
    copy = LabelStage.from_config(config, profiles={})
    copy.restore(stage.to_bytes())
    for s in (stage, copy):
        s.add_predictions(events(30, 60))
        s.add_labels([lab(f"e{i}", 2 * HOUR, 1) for i in range(30, 60, 2)])
    a = stage.flush(None, run_id="r", computed_at=5)
    b = copy.flush(None, run_id="r", computed_at=5)
    assert a == b
    v = {(r.segment, r.metric): r.value for r in a}
    assert v[("", "recall")] == 0.0  # 0.7 is below this model's threshold of 0.8
    assert v[("", "labels_coverage")] == 0.5


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"pii": ["event_id"]}, id="global"),
        pytest.param({"models": {"m": {"pii": ["event_id"]}}}, id="per-model"),
    ],
)
def test_pii_event_ids_join_as_keyed_hashes(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, object]
) -> None:
    """Labels meet their predictions when ``event_id`` is PII, and the label join (saved in the
    merger's snapshots) holds only hashes of the ids."""
    monkeypatch.setenv("DRIFTHOUSE_PII_KEY", "p" * 32)
    from drifthouse.config import Config
    from drifthouse.events import LabelEvent, PredictionEvent
    from drifthouse.stream.labels import LabelStage

    stage = LabelStage.from_config(Config.model_validate(settings), profiles={})
    ids = [f"ann{i}@example.com" for i in range(4)]
    stage.add_predictions(
        [
            PredictionEvent(model="m", ts_ms=1_000 + i, features={}, event_id=eid, prediction=0.9)
            for i, eid in enumerate(ids)
        ]
    )
    held = stage.to_bytes()
    stage.add_labels([LabelEvent(event_id=eid, model="m", ts_ms=9_000, label=1) for eid in ids])
    rows = stage.flush(None, run_id="live", computed_at=0)
    coverage = [r.value for r in rows if r.metric == "labels_coverage" and r.segment == ""]
    assert coverage == [1.0]
    assert b"example.com" not in held
