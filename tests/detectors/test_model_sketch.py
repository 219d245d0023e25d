"""The model state's serving metrics per segment value: equal to the model-level metrics of the
events holding that value, exact under batch cuts, pane splits, partitions and merge order,
capped per attribute when a window is evaluated (never by arrival order), and on the wire."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.config import MetricsConfig
from drifthouse.detectors.base import Context, Result
from drifthouse.detectors.columns import extract
from drifthouse.detectors.model_sketch import (
    OTHER_VALUE,
    PREDICTION_FEATURE,
    ModelBatch,
    ModelSketch,
    ModelState,
    SegmentState,
)
from drifthouse.detectors.numeric import NumericState
from drifthouse.detectors.reference import Profile
from drifthouse.errors import SketchError
from drifthouse.events import PredictionEvent
from drifthouse.profiles.columns import build_profile

WINDOW_MS = 3_600_000
SERVING = {
    "events", "throughput_rps", "latency_p50", "latency_p95", "latency_p99",
    "error_rate_4xx", "error_rate_5xx",
}  # fmt: skip


def _profile(kind: str) -> Profile:
    rng = np.random.default_rng(1)
    n = 600
    prediction: list[object] = (
        [float(x) for x in rng.uniform(0, 1, n).round(3)]
        if kind == "score"
        else [["cat", "dog", "eel"][i % 3] for i in range(n)]
    )
    return build_profile(
        model="m",
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
        source_digest="test",
        settings=MetricsConfig(),
        features={"x": rng.normal(0, 1, n).tolist(), "c": [["a", "b"][i % 2] for i in range(n)]},
        prediction=prediction,
        latency_ms=rng.uniform(5, 50, n).round(2).tolist(),
        status=[200] * n,
    )


PROFILES = {kind: _profile(kind) for kind in ("score", "class")}


def _sketch(kind: str = "score", max_segment_values: int = 100) -> ModelSketch:
    return ModelSketch("m", PROFILES[kind], MetricsConfig(max_segment_values=max_segment_values))


def _event(
    rng: random.Random, i: int, kind: str, segment: dict[str, str] | None
) -> PredictionEvent:
    prediction: object = (
        round(rng.random(), 3) if kind == "score" else rng.choice(["cat", "dog", "eel", "yak"])
    )
    return PredictionEvent(
        model="m",
        ts_ms=i,
        features={"x": rng.gauss(0, 1), "c": rng.choice(["a", "b"])},
        prediction=None if rng.random() < 0.05 else prediction,  # type: ignore[arg-type]
        latency_ms=None if rng.random() < 0.1 else round(rng.uniform(1, 400), 2),
        status=rng.choice([200, 200, 200, 200, 404, 503]),
        segment=segment or {},
    )


def _events(
    n: int, kind: str = "score", seed: int = 0, values: Sequence[str] = ("DE", "FR", "US", "IT")
) -> list[PredictionEvent]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        segment: dict[str, str] = {}
        if rng.random() < 0.9:
            segment["country"] = rng.choice(values)
        if rng.random() < 0.5:
            segment["tier"] = rng.choice(["gold", "free"])
        out.append(_event(rng, i, kind, segment))
    return out


def _fed(
    sketch: ModelSketch, events: Sequence[PredictionEvent], cuts: Sequence[int] = ()
) -> ModelState:
    state = sketch.empty()
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(events)), len(events)]
    for lo, hi in itertools.pairwise(bounds):
        if hi > lo:
            sketch.update(state, ModelBatch(extract(events[lo:hi], sketch.layout)))
    return state


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _model_serving(sketch: ModelSketch, state: ModelState) -> dict[tuple[str, str], float]:
    """The model-level rows a segment value also gets: serving metrics and prediction drift."""
    return {
        (r.feature, r.metric): r.value
        for r in sketch.evaluate(state, Context(window_ms=WINDOW_MS))
        if (r.feature == "" and r.metric in SERVING) or r.feature == PREDICTION_FEATURE
    }


def _as_dict(results: list[Result]) -> dict[tuple[str, str], float]:
    out = {(r.feature, r.metric): r.value for r in results}
    assert len(out) == len(results), "one row per feature and metric"
    return out


@pytest.mark.parametrize("kind", ["score", "class"])
def test_a_segment_value_gets_the_model_metrics_of_its_events(kind: str) -> None:
    sketch = _sketch(kind)
    events = _events(3_000, kind, seed=7)
    state = _fed(sketch, events, cuts=[500, 1_700])
    segments = dict(sketch.capped_segments(state))
    assert set(segments) == {
        "country=DE", "country=FR", "country=IT", "country=US", "tier=free", "tier=gold",
    }  # fmt: skip
    for name, seg in segments.items():
        attr, value = name.split("=")
        subset = [e for e in events if e.segment.get(attr) == value]
        alone = _fed(sketch, subset, cuts=[300])  # the same events as a model of their own
        want = _model_serving(sketch, alone)
        got = _as_dict(sketch.evaluate_segment(seg, Context(window_ms=WINDOW_MS)))
        assert got.keys() == want.keys(), name
        assert any(f == PREDICTION_FEATURE for f, _ in got)
        for key, value_ in want.items():
            assert _same(got[key], value_), (name, key, got[key], value_)
        assert seg.latency.equals(alone.latency)
        assert seg.status.equals(alone.status)
        assert seg.prediction is not None
        assert seg.prediction.equals(alone.prediction)
        assert seg.events == len(subset)


def test_events_without_a_segment_leave_no_segment_state() -> None:
    sketch = _sketch()
    rng = random.Random(3)
    events = [_event(rng, i, "score", None) for i in range(200)]
    cols = extract(events, sketch.layout)
    assert cols.segments == {}
    state = _fed(sketch, events)
    assert state.segments == {}
    assert list(sketch.capped_segments(state)) == []


def test_columns_take_keeps_segment_rows_in_the_new_order() -> None:
    sketch = _sketch()
    rng = random.Random(4)
    segs = [{"c": "B"}, {"c": "A"}, {}, {"c": "B", "t": "x"}, {"c": "A"}, {"t": "y"}]
    cols = extract([_event(rng, i, "score", s) for i, s in enumerate(segs)], sketch.layout)
    assert {k: v.tolist() for k, v in cols.segments.items()} == {
        ("c", "B"): [0, 3], ("c", "A"): [1, 4], ("t", "x"): [3], ("t", "y"): [5],
    }  # fmt: skip
    assert list(cols.segments) == [("c", "B"), ("c", "A"), ("t", "x"), ("t", "y")]
    part = cols.take(np.array([1, 3, 4, 5], dtype=np.intp))
    # Values in the order of their first row in the part: A (row 0) before B (row 1).
    assert {k: v.tolist() for k, v in part.segments.items()} == {
        ("c", "A"): [0, 2], ("c", "B"): [1], ("t", "x"): [1], ("t", "y"): [3],
    }  # fmt: skip
    assert list(part.segments) == [("c", "A"), ("c", "B"), ("t", "x"), ("t", "y")]
    assert cols.take(np.array([2], dtype=np.intp)).segments == {}


# -- exactness ----------------------------------------------------------------------------------

_segments = st.fixed_dictionaries(
    {},
    optional={
        # More values than a pane keeps apart with max_segment_values=1 (10), and the pool's name.
        "country": st.sampled_from([f"c{k}" for k in range(13)] + [OTHER_VALUE]),
        "tier": st.sampled_from(["gold", "free"]),
    },
)


@st.composite
def _stream(draw: st.DrawFn) -> tuple[str, list[PredictionEvent]]:
    kind = draw(st.sampled_from(["score", "class"]))
    seed = draw(st.integers(0, 10**6))
    segs = draw(st.lists(_segments, min_size=1, max_size=120))
    rng = random.Random(seed)
    return kind, [_event(rng, i, kind, s) for i, s in enumerate(segs)]


def _same_but_moments(a: SegmentState, b: SegmentState) -> None:
    """Equal counts; the prediction's float mean and M2 depend on the merge grouping."""
    assert a.events == b.events
    assert a.latency.equals(b.latency)
    assert a.status.equals(b.status)
    if isinstance(a.prediction, NumericState):
        assert isinstance(b.prediction, NumericState)
        for name in ("counts", "count", "missing", "non_finite", "vmin", "vmax"):
            np.testing.assert_array_equal(getattr(a.prediction, name), getattr(b.prediction, name))
        np.testing.assert_allclose(a.prediction.mean, b.prediction.mean, rtol=1e-12)
        np.testing.assert_allclose(a.prediction.m2, b.prediction.m2, rtol=1e-9, atol=1e-12)
    else:
        assert a.prediction is not None
        assert a.prediction.equals(b.prediction)


@settings(max_examples=60, deadline=None)
@given(_stream(), st.lists(st.integers(0, 120), max_size=6))
def test_batch_cuts_and_pane_splits_change_no_bit(
    stream: tuple[str, list[PredictionEvent]], cuts: list[int]
) -> None:
    kind, events = stream
    sketch = _sketch(kind, max_segment_values=1)  # a pane keeps 10 values apart: some pooled
    whole = _fed(sketch, events)
    assert _fed(sketch, events, cuts).equals(whole)
    # One batch cut into two panes by Columns.take, as the partition stage does, each pane
    # equal to its events fed alone.
    mask = np.array([e.ts_ms % 3 == 0 for e in events])
    cols = extract(events, sketch.layout)
    for sel in (mask, ~mask):
        idx = np.flatnonzero(sel)
        pane = sketch.update(sketch.empty(), ModelBatch(cols.take(idx)))
        assert pane.equals(_fed(sketch, [events[i] for i in idx]))
    assert whole.to_bytes() == ModelState.from_bytes(whole.to_bytes()).to_bytes()
    assert ModelState.from_bytes(whole.to_bytes()).equals(whole)


@settings(max_examples=60, deadline=None)
@given(_stream(), st.integers(2, 4), st.integers(0, 10**6))
def test_partitions_merge_to_the_model_of_each_segment_value(
    stream: tuple[str, list[PredictionEvent]], partitions: int, seed: int
) -> None:
    """Each partition's pane, merged in partition order: every segment value's state is
    bit for bit the state of a model fed that value's events over the same partitions, and
    any merge order gives the same counts (floats' mean and M2 to rounding)."""
    kind, events = stream
    sketch = _sketch(kind)
    rng = random.Random(seed)
    where = [rng.randrange(partitions) for _ in events]
    parts = [[e for e, p in zip(events, where, strict=True) if p == k] for k in range(partitions)]
    panes = [_fed(sketch, part, cuts=[rng.randrange(60)]) for part in parts]
    merged = panes[0]
    for pane in panes[1:]:
        merged = sketch.merge(merged, pane)
    keys = {(a, v) for e in events for a, v in e.segment.items()}
    assert set(merged.segments) == keys
    for (attr, value), seg in merged.segments.items():
        alone = [_fed(sketch, [e for e in part if e.segment.get(attr) == value]) for part in parts]
        model = alone[0]
        for pane in alone[1:]:
            model = sketch.merge(model, pane)
        assert seg.latency.equals(model.latency)
        assert seg.status.equals(model.status)
        assert seg.prediction is not None
        assert seg.prediction.equals(model.prediction)
        assert seg.events == int(model.counters[0])
    # Another merge order, and the merged state over the wire.
    other = panes[-1]
    for pane in reversed(panes[:-1]):
        other = sketch.merge(pane, other)
    assert set(other.segments) == set(merged.segments)
    for key, seg in merged.segments.items():
        _same_but_moments(seg, other.segments[key])
    assert ModelState.from_bytes(merged.to_bytes()).equals(merged)
    # A merge shares no array with its inputs: updating a pane later leaves it alone.
    before = merged.to_bytes()
    sketch.update(panes[0], ModelBatch(extract(events[:5], sketch.layout)))
    assert merged.to_bytes() == before


def test_bytes_written_before_segments_still_decode() -> None:
    sketch = _sketch()
    state = _fed(sketch, [e for e in _events(50) if not e.segment] or _events(1))
    state.segments.clear()
    # Bytes that old have no multivariate part either (a later field, after segments).
    state = dataclasses.replace(state, multivariate=None)
    fields = msgspec.msgpack.decode(state.to_bytes())
    assert fields[-1] is None  # the segments field, absent from older bytes
    old = msgspec.msgpack.encode(fields[:-1])
    restored = ModelState.from_bytes(old)
    assert restored.segments == {}
    assert restored.equals(state)


# -- the cap ------------------------------------------------------------------------------------


def _counted(counts: dict[str, int], seed: int, kind: str = "class") -> list[PredictionEvent]:
    rng = random.Random(seed)
    values = [v for v, n in counts.items() for _ in range(n)]
    rng.shuffle(values)
    return [_event(rng, i, kind, {"country": v}) for i, v in enumerate(values)]


def test_the_cap_keeps_the_values_with_most_events_ties_by_name() -> None:
    counts = {"DE": 9, "US": 5, "FR": 5, "IT": 2, "ES": 1, OTHER_VALUE: 3}
    sketch = _sketch("class", max_segment_values=2)
    results = None
    base = _counted(counts, 0)
    for seed in range(6):  # the same events in any arrival order, with any batch cuts
        events = random.Random(seed).sample(base, len(base))
        state = _fed(sketch, events, cuts=[seed * 3, 11])
        capped = dict(sketch.capped_segments(state))
        # DE (9) and FR (5, before US by name) are kept; US, IT, ES and the literal
        # __other__ are pooled.
        assert list(capped) == ["country=DE", "country=FR", f"country={OTHER_VALUE}"]
        assert [s.events for s in capped.values()] == [9, 5, 5 + 2 + 1 + 3]
        pooled = [e for e in events if e.segment["country"] in {"US", "IT", "ES", OTHER_VALUE}]
        alone = _fed(sketch, pooled)
        other = capped[f"country={OTHER_VALUE}"]
        # A class prediction's state is all counts: the pool is exactly its events' model.
        assert other.latency.equals(alone.latency)
        assert other.status.equals(alone.status)
        assert other.prediction is not None
        assert other.prediction.equals(alone.prediction)
        rows = {
            name: _as_dict(sketch.evaluate_segment(seg, Context(window_ms=WINDOW_MS)))
            for name, seg in capped.items()
        }
        if results is None:
            results = rows
        assert rows.keys() == results.keys()
        for name in rows:
            assert all(_same(rows[name][k], results[name][k]) for k in rows[name]), name


def test_the_cap_is_per_attribute_and_a_window_sums_its_panes_first() -> None:
    """A value rare in each pane but common in the window is kept: the cap looks at the
    merged window, not at the panes."""
    sketch = _sketch("class", max_segment_values=1)
    rng = random.Random(9)
    first = [_event(rng, i, "class", {"country": "DE", "tier": "gold"}) for i in range(3)]
    first += [_event(rng, i, "class", {"country": "FR"}) for i in range(2)]
    second = [_event(rng, i, "class", {"country": "FR", "tier": "free"}) for i in range(2)]
    window = sketch.merge(_fed(sketch, first), _fed(sketch, second))
    capped = {name: seg.events for name, seg in sketch.capped_segments(window)}
    assert capped == {
        "country=FR": 4, f"country={OTHER_VALUE}": 3, "tier=gold": 3, f"tier={OTHER_VALUE}": 2,
    }  # fmt: skip


def test_a_pane_pools_values_beyond_its_limit_as_they_arrive() -> None:
    sketch = _sketch("score", max_segment_values=1)
    assert sketch.pane_segment_limit == 10
    rng = random.Random(2)
    names = [f"v{k:02d}" for k in range(14)]
    events = [_event(rng, i, "score", {"country": names[i % 14]}) for i in range(70)]
    state = _fed(sketch, events, cuts=[3, 20, 33])
    assert [v for _, v in state.segments] == [*names[:10], OTHER_VALUE]
    pooled = [e for e in events if e.segment["country"] in names[10:]]
    # The pool is fed in arrival order: bit for bit the model of its events.
    other = state.segments[("country", OTHER_VALUE)]
    alone = _fed(sketch, pooled)
    assert other.prediction is not None
    assert other.prediction.equals(alone.prediction)
    assert other.latency.equals(alone.latency)
    assert Counter(v for _, v in state.segments) == Counter([*names[:10], OTHER_VALUE])
    assert _fed(sketch, events).equals(state)


# -- attributes are bounded ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events_per_attribute", "kept"),
    [
        pytest.param({"a": 5, "b": 4, "c": 4, "d": 2, "e": 4}, {"a", "b", "c"}, id="most-events-ties-by-name"),
        pytest.param({"z": 9, "y": 1, "x": 1, "w": 1}, {"z", "w", "x"}, id="names-break-ties"),
        pytest.param({"a": 1, "b": 1}, {"a", "b"}, id="under-the-limit"),
    ],
)  # fmt: skip
def test_a_window_writes_the_attributes_with_the_most_events(
    events_per_attribute: dict[str, int], kept: set[str]
) -> None:
    sketch = ModelSketch("m", PROFILES["score"], MetricsConfig(max_segment_attributes=3))
    rng = random.Random(7)
    segs = [{attr: "v"} for attr, n in events_per_attribute.items() for _ in range(n)]
    rng.shuffle(segs)
    events = [_event(rng, i, "score", s) for i, s in enumerate(segs)]
    whole = _fed(sketch, events)
    written = {name.split("=", 1)[0] for name, _ in sketch.capped_segments(whole)}
    assert written == kept
    # any split over partitions and batches writes the same attributes with the same states
    for seed in range(3):
        split = random.Random(seed)
        parts: list[list[PredictionEvent]] = [[], [], []]
        for e in events:
            parts[split.randrange(3)].append(e)
        merged = sketch.empty()
        for part in parts:
            merged = sketch.merge(merged, _fed(sketch, part, cuts=[split.randrange(8)]))
        got = dict(sketch.capped_segments(merged))
        assert set(got) == {name for name, _ in sketch.capped_segments(whole)}
        assert all(got[name].events == seg.events for name, seg in sketch.capped_segments(whole))


def test_a_pane_keeps_at_most_ten_times_the_attributes() -> None:
    sketch = ModelSketch("m", PROFILES["score"], MetricsConfig(max_segment_attributes=2))
    rng = random.Random(3)
    events = [_event(rng, i, "score", {f"a{i:02d}": "v", "kept": "v"}) for i in range(50)]
    state = _fed(sketch, events, cuts=[7, 30])
    attributes = {attr for attr, _ in state.segments}
    assert len(attributes) == sketch.pane_attribute_limit == 20
    assert "kept" in attributes  # attributes already kept keep counting
    assert state.segments[("kept", "v")].events == 50
    assert [name for name, _ in sketch.capped_segments(state)] == ["a00=v", "kept=v"]


def test_evaluate_needs_the_window_length() -> None:
    sketch = _sketch("score")
    with pytest.raises(SketchError, match="window_ms"):
        sketch.evaluate(sketch.empty())
    with pytest.raises(SketchError, match="window_ms"):
        sketch.evaluate_segment(sketch.empty_segment())
