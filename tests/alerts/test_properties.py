"""Properties of the rules engine and the dispatcher: event time only, restarts invisible."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.alerts.base import Notification
from drifthouse.alerts.routing import Dispatcher
from drifthouse.alerts.rules import RuleEngine
from drifthouse.config import InhibitConfig, RouteConfig, RuleConfig
from drifthouse.rows import AlertRow, MetricRow
from tests.alerts.conftest import MIN, mrow

VALUES = st.lists(st.sampled_from([0.0, 0.05, 0.15, 0.24, 0.26, 0.4]), min_size=1, max_size=40)
RULES = st.builds(
    lambda for_, keep, clear, sev: RuleConfig.model_validate(
        {
            "name": "r",
            "metric": "psi",
            "when": "value > 0.25",
            "for": for_,
            "keep_firing_for": keep,
            "severity": sev,
            **({"clear": "value < 0.1"} if clear else {}),
        }
    ),
    st.integers(1, 3),
    st.integers(0, 2),
    st.booleans(),
    st.sampled_from(["critical", "warning"]),
)
ROUTES = [
    RouteConfig.model_validate(
        {
            "match": {"severity": "critical"},
            "receivers": ["pd", "slack"],
            "group_wait": "0s",
            "group_interval": "2m",
            "repeat_interval": "10m",
        }
    ),
    RouteConfig.model_validate(
        {
            "match": {},
            "receivers": ["slack"],
            "group_by": ["model"],
            "group_wait": "90s",
            "group_interval": "5m",
            "repeat_interval": "20m",
        }
    ),
]
INHIBIT = [
    InhibitConfig(source={"severity": "critical"}, target={"severity": "warning"}, equal=["model"])
]


def rows_for(a: list[float], b: list[float]) -> list[list[MetricRow]]:
    """Window-by-window batches for two series (two features of one model)."""
    batches: list[list[MetricRow]] = []
    for m in range(max(len(a), len(b))):
        batch = []
        if m < len(a):
            batch.append(mrow(m + 1, a[m], feature="x"))
        if m < len(b):
            batch.append(mrow(m + 1, b[m], feature="y"))
        batches.append(batch)
    return batches


@settings(max_examples=60, deadline=None)
@given(rule=RULES, a=VALUES, b=VALUES, split=st.integers(0, 40))
def test_engine_live_batch_and_restart_agree(
    rule: RuleConfig, a: list[float], b: list[float], split: int
) -> None:
    batches = rows_for(a, b)
    live = RuleEngine([rule])
    live_alerts = [x for batch in batches for x in live.process(batch)]
    assert RuleEngine([rule]).process([r for batch in batches for r in batch]) == live_alerts
    split = min(split, len(batches))
    first = RuleEngine([rule])
    before = [x for batch in batches[:split] for x in first.process(batch)]
    second = RuleEngine([rule])
    second.load_state(json.loads(json.dumps(first.dump_state())))
    redo = batches[split - 1 : split] if split else []  # the last window again, as after a crash
    after = [x for batch in redo + batches[split:] for x in second.process(batch)]
    assert before + after == live_alerts
    for key in {x.dedup_key for x in live_alerts}:
        statuses = [x.status for x in live_alerts if x.dedup_key == key]
        assert statuses == ["firing", "resolved"] * (len(statuses) // 2) + ["firing"] * (
            len(statuses) % 2
        )


# A stream with late rows: each step writes the next window, or rewrites one written before
# (how many windows back, and its new value), as late labels do.
STEPS = st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from([0.0, 0.05, 0.15, 0.24, 0.26, 0.4])),
    min_size=1,
    max_size=40,
)


def with_rewrites(steps: list[tuple[int, float]]) -> list[MetricRow]:
    rows: list[MetricRow] = []
    last = 0
    for back, value in steps:
        if back == 0 or back > last:
            last += 1
            rows.append(mrow(last, value))
        else:
            rows.append(mrow(last - back + 1, value))
    return rows


@settings(max_examples=80, deadline=None)
@given(rule=RULES, steps=STEPS, split=st.integers(0, 40))
def test_late_rows_alternate_and_restarts_change_nothing(
    rule: RuleConfig, steps: list[tuple[int, float]], split: int
) -> None:
    rows = with_rewrites(steps)
    live = RuleEngine([rule])
    alerts = [x for r in rows for x in live.process([r])]
    # Writing every window again at its newest value (as late labels may) goes on from there.
    newest = {r.window_end: r for r in rows}
    more = [x for end in sorted(newest) for x in live.process([newest[end]])]
    for key in {x.dedup_key for x in alerts + more}:
        statuses = [x.status for x in alerts + more if x.dedup_key == key]
        assert statuses == ["firing", "resolved"] * (len(statuses) // 2) + ["firing"] * (
            len(statuses) % 2
        )
    # Every change comes from a row of its own window on which its condition held.
    for x in alerts + more:
        assert (x.value > 0.25) == (x.status == "firing")
    # A restart from the state saved after any row, that processes that row again, agrees.
    split = min(split, len(rows))
    first = RuleEngine([rule])
    before = [x for r in rows[:split] for x in first.process([r])]
    second = RuleEngine([rule])
    second.load_state(json.loads(json.dumps(first.dump_state())))
    redo = rows[split - 1 : split] if split else []
    assert before + [x for r in redo + rows[split:] for x in second.process([r])] == alerts


def alerts_for(a: list[float], b: list[float], severity_b: str) -> list[AlertRow]:
    ra = RuleConfig(name="ra", metric="psi", when="value > 0.25", feature="x", severity="critical")
    rb = RuleConfig(
        name="rb",
        metric="psi",
        when="value > 0.25",
        clear="value < 0.1",
        feature="y",
        severity=severity_b,
    )
    engine = RuleEngine([ra, rb])
    return [x for batch in rows_for(a, b) for x in engine.process(batch)]


def summary(notes: list[Notification]) -> list[tuple[str, str, int, list[str], list[str]]]:
    return [
        (
            n.receiver,
            n.kind,
            n.ts,
            sorted(x.rule for x in n.firing),
            sorted(x.rule for x in n.resolved),
        )
        for n in notes
    ]


@settings(max_examples=60, deadline=None)
@given(
    a=VALUES,
    b=VALUES,
    sev=st.sampled_from(["critical", "warning"]),
    step=st.integers(1, 30),
    split=st.integers(0, 60),
)
def test_dispatcher_depends_on_event_time_only(
    a: list[float], b: list[float], sev: str, step: int, split: int
) -> None:
    alerts = alerts_for(a, b, sev)
    end = (max(len(a), len(b)) + 60) * MIN

    reference = Dispatcher(ROUTES, INHIBIT)
    reference.submit(alerts)
    expected = reference.advance(end)

    # the watermark moving every `step` minutes, alerts submitted when their window closes,
    # and a restart (state through JSON) at minute `split`
    d = Dispatcher(ROUTES, INHIBIT)
    got: list[Notification] = []
    for t in range(0, end + 1, MIN):
        d.submit([x for x in alerts if x.ts == t])
        if t // MIN == split:
            restarted = Dispatcher(ROUTES, INHIBIT)
            restarted.load_state(json.loads(json.dumps(d.dump_state())))
            d = restarted
        if (t // MIN) % step == 0:
            got += d.advance(t)
    got += d.advance(end)
    assert summary(got) == summary(expected)
    assert [n.id for n in got] == [n.id for n in expected]

    # a receiver never hears of a resolution without having heard of the firing
    for receiver in ("pd", "slack"):
        told: set[str] = set()
        for n in expected:
            if n.receiver != receiver:
                continue
            told |= {x.dedup_key for x in n.firing}
            assert {x.dedup_key for x in n.resolved} <= told
