"""Label windows: late labels rewrite, sliding windows, segments and fairness, caps, snapshots."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.detectors.labels import binary_metrics
from drifthouse.stream.labels import (
    JoinedPair,
    LabelJoin,
    LabelWindows,
)
from drifthouse.stream.windows import WindowSpec
from tests.stream.labels.samples import DAY, HOUR, SK, SPECS, lab, make_windows, metrics_of, rec


def test_late_label_rewrites_its_window() -> None:
    lw, join = make_windows(), LabelJoin(horizon_ms=DAY)
    preds = [rec(f"e{i}", i * 60_000, score=0.9 if i % 2 else 0.1) for i in range(60)]
    lw.add_predictions(preds)
    join.add_predictions(preds)
    lw.add_pairs(join.add_labels([lab(f"e{i}", HOUR + i, i % 2) for i in range(30)]))
    first = [w for w in lw.flush(ready_until=HOUR) if w.spec_index == 0]
    assert [(w.start, w.rewrite) for w in first] == [(0, False)]
    v = metrics_of(lw, first[0])
    assert v[("", "accuracy")] == 1.0
    assert v[("", "labels_coverage")] == 0.5
    assert lw.flush(ready_until=HOUR) == []  # nothing changed: nothing to write
    # A day later the rest of the labels come, all wrong: the window is rewritten.
    lw.add_pairs(join.add_labels([lab(f"e{i}", DAY - 1, 1 - i % 2) for i in range(30, 60)]))
    again = [w for w in lw.flush(ready_until=HOUR) if w.spec_index == 0]
    assert [(w.start, w.rewrite) for w in again] == [(0, True)]
    v = metrics_of(lw, again[0])
    assert v[("", "accuracy")] == 0.5
    assert v[("", "labels_coverage")] == 1.0
    # The rewrite is the same rows whatever was written before: a fresh run agrees.
    fresh, join2 = make_windows(), LabelJoin(horizon_ms=DAY)
    fresh.add_predictions(preds)
    join2.add_predictions(preds)
    fresh.add_pairs(join2.add_labels([lab(f"e{i}", HOUR + i, i % 2) for i in range(30)]))
    fresh.add_pairs(join2.add_labels([lab(f"e{i}", DAY - 1, 1 - i % 2) for i in range(30, 60)]))
    (once,) = [w for w in fresh.flush() if w.spec_index == 0 and w.start == 0]
    assert metrics_of(fresh, once) == v


def test_windows_wait_for_ready_until() -> None:
    lw = make_windows()
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
    lw, join = make_windows(), LabelJoin(horizon_ms=DAY)
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
        got = metrics_of(lw, w)
        for k in ("accuracy", "precision", "recall", "f1"):
            assert got[("", k)] == pytest.approx(want[k], abs=1e-12), (w.start, k)
        assert got[("", "roc_auc")] == pytest.approx(want["roc_auc"], abs=0.01)
        assert w.predictions() == int(m.sum())


def test_segments_and_fairness() -> None:
    lw, join = make_windows(), LabelJoin(horizon_ms=DAY)
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
    v = metrics_of(lw, w)
    assert v[("country=DE", "recall")] == 1.0
    assert v[("country=FR", "recall")] == 0.5
    assert v[("country", "equal_opportunity_diff")] == 0.5
    assert v[("country", "demographic_parity_diff")] == pytest.approx(0.5 - 0.25)
    assert v[("country=DE", "labels_coverage")] == 1.0


def test_fairness_gaps_raise_alerts_through_a_rule() -> None:
    # The gaps are metric rows like any other: a rule scoped to the attribute fires on them.
    from drifthouse.alerts.rules import RuleEngine, validate_rules
    from drifthouse.config import RuleConfig

    lw, join = make_windows(), LabelJoin(horizon_ms=DAY)
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
    lw, join = make_windows(), LabelJoin(horizon_ms=HOUR)
    join.add_labels([lab("ghost", 1_000), lab("", 2_000)])
    join.add_predictions([rec("x", 3 * HOUR)])
    lw.add_dropped(join.take_dropped())
    (w,) = [w for w in lw.flush() if w.spec_index == 0 and w.start == 0]
    assert metrics_of(lw, w)[("", "labels_unmatched")] == 2.0
    assert w.model_version == "unknown"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=3))
def test_batch_cuts_give_bitwise_identical_states(cuts: list[int]) -> None:
    rng = np.random.default_rng(9)
    n = 200
    preds = [rec(f"e{i}", int(rng.integers(0, 2 * HOUR)), float(rng.random())) for i in range(n)]
    pairs = [JoinedPair(p, int(rng.integers(0, 2)), 3 * HOUR) for p in preds]
    whole = make_windows()
    whole.add_pairs(pairs)
    bounds = [0, *sorted(cuts), n]
    cut = make_windows()
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
    lw, join = make_windows(), LabelJoin(horizon_ms=DAY)
    preds = [rec(f"e{i}", i * 60_000, segment=[("c", "x")]) for i in range(120)]
    lw.add_predictions(preds)
    join.add_predictions(preds)
    lw.add_pairs(join.add_labels([lab(f"e{i}", 3 * HOUR, 1) for i in range(0, 120, 3)]))
    lw.flush(ready_until=HOUR)
    copy = make_windows()
    copy.restore(lw.to_bytes())
    lw.add_pairs(join.add_labels([lab("e1", 3 * HOUR, 0)]))
    join2 = LabelJoin(horizon_ms=DAY)
    join2.add_predictions(preds)
    copy.add_pairs(join2.add_labels([lab("e1", 3 * HOUR, 0)]))
    a, b = lw.flush(), copy.flush()
    assert [(w.spec_index, w.start, w.rewrite) for w in a] == [
        (w.spec_index, w.start, w.rewrite) for w in b
    ]
    assert [metrics_of(lw, w) for w in a] == [metrics_of(copy, w) for w in b]


def test_old_panes_are_dropped_after_the_horizon() -> None:
    lw = make_windows()
    lw.add_predictions([rec(f"e{i}", i * HOUR) for i in range(24 * 10)])  # ten days
    lw.flush()
    assert lw._clock == (24 * 10 - 1) * HOUR
    starts = {key[3] for key in lw._panes}
    assert min(starts) >= lw._clock - DAY - HOUR
