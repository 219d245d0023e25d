"""The label join: order, unknown, expired and duplicate labels, bounds, snapshots."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.events import PredictionEvent
from drifthouse.stream.labels import (
    JoinedPair,
    LabelJoin,
    PredictionRecord,
    decode_records,
    encode_records,
)
from tests.stream.labels.samples import DAY, HOUR, lab, rec


def _pairs(out: list[JoinedPair]) -> list[tuple[str | None, object]]:
    return [(p.prediction.event_id, p.label) for p in out]


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


@pytest.mark.parametrize(
    "prediction", [0.25, 3, True, {"0": 0.2, "1": 0.8}, "cat", None, 2**53, -0.0]
)
@pytest.mark.parametrize("segment", [{}, {"country": "DE", "app": "ios"}])
def test_records_of_many_events_are_those_of_each(
    prediction: object, segment: dict[str, str]
) -> None:
    events = [
        PredictionEvent(
            model="m",
            ts_ms=5 + i,
            features={},
            event_id=f"e{i}",
            prediction=prediction,  # type: ignore[arg-type]
            segment=segment,
        )
        for i in range(3)
    ]
    many = PredictionRecord.from_events(events)
    assert encode_records(many) == encode_records([PredictionRecord.from_event(e) for e in events])


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
