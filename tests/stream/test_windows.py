"""Event-time windows: alignment, lateness, sliding = merge of panes, and order independence."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.config import WindowConfig
from drifthouse.errors import SketchError
from drifthouse.stream.windows import NO_TIME, EventTimeWindows, WindowSpec

MIN = 60_000
HOUR = 60 * MIN


def _counter_windows(specs, lateness=0):
    # State: a Counter of event times, so results show exactly which events a window holds.
    return EventTimeWindows(
        specs,
        allowed_lateness_ms=lateness,
        empty=lambda _key: Counter(),
        merge=lambda _key, a, b: a + b,
    )


def _feed(w, ts, batch=None):
    """Feed ``ts`` in arrival order, cut into batches of ``batch``; returns closed windows and late times."""
    ts = np.asarray(ts, dtype=np.int64)
    batch = batch or max(1, ts.size)
    closed, late = [], []
    for lo in range(0, ts.size, batch):
        chunk = ts[lo : lo + batch]
        for i, routed in enumerate(w.route(chunk)):
            late.extend((i, int(t)) for t in chunk[routed.late])
            for pane, idx in routed.groups():
                values = chunk[idx]
                w.update(i, pane, "m", lambda s, v=values: s + Counter(v.tolist()))
        closed.extend(w.close())
    closed.extend(w.close(final=True))
    return closed, late


def _as_table(closed):
    return sorted(
        (c.spec.name, c.start, c.end, c.key, tuple(sorted(c.state.elements()))) for c in closed
    )


def test_window_names_and_panes():
    assert WindowSpec.from_config(WindowConfig(size="1h")).name == "1h"
    sliding = WindowSpec.from_config(WindowConfig(size="15m", hop="1m"))
    assert sliding.name == "15m/1m"
    assert sliding.pane_ms == MIN
    assert sliding.panes_per_window == 15


def test_seven_day_windows_start_on_thursday_utc():
    spec = WindowSpec.tumbling(7 * 24 * HOUR)
    ts = int(datetime(2026, 11, 27, 15, 30, tzinfo=UTC).timestamp() * 1000)
    start = int(spec.pane_start(np.array([ts]))[0])
    day = datetime.fromtimestamp(start / 1000, tz=UTC)
    assert day.weekday() == 3  # Thursday
    assert (day.hour, day.minute, day.second) == (0, 0, 0)


def test_times_before_the_epoch_align_too():
    spec = WindowSpec.tumbling(HOUR)
    assert spec.pane_start(np.array([-1], np.int64)).tolist() == [-HOUR]


@pytest.mark.parametrize(
    ("size", "hop"),
    [
        pytest.param(0, 0, id="zero"),
        pytest.param(15 * MIN, 7 * MIN, id="size-not-multiple-of-hop"),
    ],
)
def test_bad_specs_are_refused(size, hop):
    with pytest.raises(SketchError):
        WindowSpec(size, hop)


def test_tumbling_window_closes_when_watermark_passes_end():
    w = _counter_windows([WindowSpec.tumbling(HOUR)], lateness=30_000)
    for t in (10, HOUR + 29_000):
        (routed,) = w.route(np.array([t], np.int64))
        for pane, _ in routed.groups():
            w.update(0, pane, "m", lambda s, t=t: s + Counter([t]))
    assert w.close() == []  # watermark at HOUR - 1000: not yet
    w.route(np.array([HOUR + 30_000], np.int64))
    (closed,) = w.close()
    assert (closed.start, closed.end) == (0, HOUR)
    assert sorted(closed.state.elements()) == [10]


def test_late_event_is_reported_and_not_counted():
    w = _counter_windows([WindowSpec.tumbling(MIN)], lateness=1_000)
    closed, late = _feed(w, [0, 59_000, 61_000, 59_500, 62_000], batch=2)
    # 59_500 arrives after the watermark (61_000 - 1_000) reached the minute's end 60_000.
    assert late == [(0, 59_500)]
    table = _as_table(closed)
    assert table[0] == ("1m", 0, MIN, "m", (0, 59_000))


def test_event_within_lateness_is_counted():
    w = _counter_windows([WindowSpec.tumbling(MIN)], lateness=5_000)
    closed, late = _feed(w, [59_000, 61_000, 59_500])
    assert late == []
    assert _as_table(closed)[0][4] == (59_000, 59_500)


def test_sliding_window_is_merge_of_its_panes():
    spec = WindowSpec(3 * MIN, MIN)
    w = _counter_windows([spec])
    ts = [10, MIN + 10, 2 * MIN + 10, 3 * MIN + 10]
    closed, _ = _feed(w, ts)
    got = {(c.start, c.end): sorted(c.state.elements()) for c in closed}
    for (start, end), values in got.items():
        assert values == [t for t in ts if start <= t < end]
    # Every window that holds an event is emitted: ends MIN .. 6*MIN.
    assert sorted(end for _, end in got) == [MIN * k for k in range(1, 7)]


def test_gaps_cost_nothing_and_skip_empty_windows():
    spec = WindowSpec(15 * MIN, MIN)
    w = _counter_windows([spec])
    closed, _ = _feed(w, [0, 365 * 24 * HOUR])
    assert len(closed) == 30


def test_each_window_is_emitted_once():
    w = _counter_windows([WindowSpec(2 * MIN, MIN)])
    closed, _ = _feed(w, [0, MIN, 2 * MIN, 3 * MIN, 4 * MIN], batch=1)
    keys = [(c.spec.name, c.start, c.end) for c in closed]
    assert len(keys) == len(set(keys))


times = st.lists(st.integers(min_value=0, max_value=6 * HOUR), min_size=1, max_size=200)


@settings(max_examples=150, deadline=None)
@given(ts=times, batch=st.integers(min_value=1, max_value=50))
def test_batch_cuts_do_not_change_results(ts, batch):
    specs = [WindowSpec.tumbling(HOUR), WindowSpec(15 * MIN, 5 * MIN)]
    one = _feed(_counter_windows(specs, lateness=30_000), ts)
    many = _feed(_counter_windows(specs, lateness=30_000), ts, batch=batch)
    assert _as_table(one[0]) == _as_table(many[0])
    assert sorted(one[1]) == sorted(many[1])


@settings(max_examples=150, deadline=None)
@given(ts=times, data=st.data())
def test_shuffles_within_lateness_give_identical_results(ts, data):
    lateness = 10 * MIN
    ordered = sorted(ts)
    # Disorder bounded by the lateness: each event may swap with neighbours less than `lateness` apart.
    jitter = data.draw(
        st.lists(st.integers(0, lateness - 1), min_size=len(ordered), max_size=len(ordered))
    )
    shuffled = [
        t
        for _, t in sorted(
            zip((t + j for t, j in zip(ordered, jitter, strict=True)), ordered, strict=True)
        )
    ]
    specs = [WindowSpec.tumbling(HOUR), WindowSpec(15 * MIN, 5 * MIN)]
    a, late_a = _feed(_counter_windows(specs, lateness=lateness), ordered)
    b, late_b = _feed(_counter_windows(specs, lateness=lateness), shuffled, batch=7)
    assert late_a == late_b == []
    assert _as_table(a) == _as_table(b)


@settings(max_examples=100, deadline=None)
@given(ts=times)
def test_every_on_time_event_lands_in_every_window_holding_its_time(ts):
    spec = WindowSpec(30 * MIN, 10 * MIN)
    closed, late = _feed(_counter_windows([spec], lateness=HOUR), ts)
    on_time = Counter(ts) - Counter(t for _, t in late)
    for c in closed:
        expect = Counter({t: n for t, n in on_time.items() if c.start <= t < c.end})
        assert c.state == expect


def _naive_late(events, *, pane_ms, lateness, spread):
    """Per event, in order: late when its pane ended at or before the watermark made by the
    events before it (the smallest clock within ``spread`` of the largest, minus lateness)."""
    clocks, mark, late = {}, None, []
    for model, t in events:
        late.append(mark is not None and (t // pane_ms) * pane_ms + pane_ms <= mark)
        clocks[model] = max(clocks.get(model, t), t)
        top = max(clocks.values())
        made = min(c for c in clocks.values() if c >= top - spread) - lateness
        mark = made if mark is None else max(mark, made)
    return late


_clocked_events = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 6 * HOUR)), max_size=60
)


@settings(max_examples=150, deadline=None)
@given(events=_clocked_events, batch=st.integers(1, 9), cut=st.integers(0, 60))
def test_a_clock_per_model_is_exact_for_any_batch_cut_and_restart(events, batch, cut):
    spec, lateness, spread = WindowSpec.tumbling(HOUR), 30_000, HOUR
    want = _naive_late(events, pane_ms=HOUR, lateness=lateness, spread=spread)

    def fresh():
        return EventTimeWindows(
            [spec], allowed_lateness_ms=lateness, clock_spread_ms=spread,
            empty=lambda _k: 0, merge=lambda _k, a, b: a + b,
        )  # fmt: skip

    def run(w, part):
        got = []
        for lo in range(0, len(part), batch):
            chunk = part[lo : lo + batch]
            ts = np.array([t for _, t in chunk], np.int64)
            (routed,) = w.route(ts, [m for m, _ in chunk])
            got += routed.late.tolist()
        return got

    assert run(fresh(), events) == want
    # A restart at event `cut`, from the state the origin of that event records.
    cut = min(cut, len(events))
    first = fresh()
    run(first, events[:cut])
    _, max_ts, mark, clocks = first.origin(cut)
    again = fresh()
    again.restore(max_ts=max_ts, emitted_until=[NO_TIME], watermark=mark, clocks=clocks)
    assert run(again, events[cut:]) == want[cut:]
    # The origin of an event inside a batch records the same state.
    if cut < len(events):
        whole = fresh()
        whole.route(np.array([t for _, t in events], np.int64), [m for m, _ in events])
        assert whole.origin(cut, cut) == first.origin(cut)
