"""Metric events: mean and max per name, batch cuts, merges, reserved names, the default rule."""

from __future__ import annotations

import fnmatch
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.config.default_rules import load_default_rules
from drifthouse.events import EventDecoder, MetricEvent
from drifthouse.expr import parse
from drifthouse.stream.metric_events import RESERVED, MetricEventSketch, MetricEventState

SK = MetricEventSketch()

events = st.lists(
    st.dictionaries(
        st.sampled_from(["cpu_util", "gpu_mem", "queue", "qps"]),
        st.floats(-1e6, 1e6, allow_nan=False),
        max_size=3,
    ),
    max_size=40,
)


def _values(state: MetricEventState) -> dict[str, float]:
    return {r.metric: r.value for r in SK.evaluate(state)}


def test_hand_computed_from_decoded_events() -> None:
    dec = EventDecoder(MetricEvent)
    raw = [
        b'{"model": "fraud", "ts": 1767225600001, "metrics": {"cpu_util": 0.6}}',
        b'{"model": "fraud", "ts": 1767225600002, "metrics": {"cpu_util": 0.95, "rss_mb": 512}}',
        b'{"model": "fraud", "ts": 1767225600003, "metrics": {"cpu_util": 0.85}}',
    ]
    evs = [dec.decode(r) for r in raw]
    v = _values(SK.update(SK.empty(), [e.metrics for e in evs]))
    assert v == {
        "cpu_util": pytest.approx(0.8),
        "cpu_util_max": 0.95,
        "rss_mb": 512.0,
        "rss_mb_max": 512.0,
        "metric_events": 3.0,
    }


def test_reserved_names_are_ignored_and_counted() -> None:
    assert "events" in RESERVED
    v = _values(SK.update(SK.empty(), [{"events": 5.0, "cpu_util": 0.1}]))
    assert "events" not in v
    assert v["metric_events_ignored"] == 1.0


def test_name_cap() -> None:
    sk = MetricEventSketch(max_names=2)
    s = sk.update(sk.empty(), [{"a": 1.0, "b": 2.0, "c": 3.0}])
    s = sk.update(s, [{"d": 1.0}])
    assert s.names == ("a", "b")
    assert int(s.counters[1]) == 2


@settings(max_examples=100, deadline=None)
@given(events, st.lists(st.integers(0, 40), max_size=4))
def test_batch_cuts_are_bitwise_identical(evs: list[dict[str, float]], cuts: list[int]) -> None:
    whole = SK.update(SK.empty(), evs)
    bounds = [0, *sorted(min(c, len(evs)) for c in cuts), len(evs)]
    state = SK.empty()
    for lo, hi in itertools.pairwise(bounds):
        state = SK.update(state, evs[lo:hi])
    assert state.equals(whole)
    assert MetricEventState.from_bytes(whole.to_bytes()).equals(whole)


@settings(max_examples=100, deadline=None)
@given(events, events, events)
def test_merge_equals_concatenation(
    a: list[dict[str, float]], b: list[dict[str, float]], c: list[dict[str, float]]
) -> None:
    sa, sb, sc = (SK.update(SK.empty(), x) for x in (a, b, c))
    whole = SK.update(SK.empty(), a + b + c)
    for merged in (SK.merge(SK.merge(sa, sb), sc), SK.merge(sa, SK.merge(sb, sc))):
        assert merged.names == whole.names
        assert np.array_equal(merged.count, whole.count)
        assert np.array_equal(merged.vmax, whole.vmax)
        assert np.array_equal(merged.counters, whole.counters)
        np.testing.assert_allclose(merged.total, whole.total, rtol=1e-9, atol=1e-3)
    assert SK.merge(sa, SK.empty()).equals(sa)
    assert SK.merge(SK.empty(), sa).equals(sa)


def test_default_resource_rule_matches_and_fires() -> None:
    rule = next(r for r in load_default_rules() if r.name == "resource-pressure")
    results = SK.evaluate(SK.update(SK.empty(), [{"cpu_util": 0.83}, {"cpu_util": 0.9}]))
    matching = [r for r in results if fnmatch.fnmatchcase(r.metric, rule.metric)]
    assert [r.metric for r in matching] == ["cpu_util"]  # the mean, not cpu_util_max
    assert parse(rule.when).evaluate(value=matching[0].value)
