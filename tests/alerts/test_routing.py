from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
import structlog

from drifthouse.alerts.base import Notification
from drifthouse.alerts.routing import Dispatcher
from drifthouse.alerts.silences import MemorySilenceStore, add_silence, expire_silence
from drifthouse.config import InhibitConfig, RouteConfig
from drifthouse.rows import AlertRow
from tests.alerts.conftest import MIN, arow

ROUTES = [
    RouteConfig.model_validate(
        {"match": {"severity": "critical"}, "receivers": ["pagerduty", "slack"], "group_wait": "0s"}
    ),
    RouteConfig.model_validate(
        {
            "match": {"severity": "warning"},
            "receivers": ["slack"],
            "group_by": ["model"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "1h",
        }
    ),
]
INHIBIT = [
    InhibitConfig(source={"severity": "critical"}, target={"severity": "warning"}, equal=["model"])
]


def warn(
    ts: int, model: str = "fraud", feature: str = "amount", status: str = "firing"
) -> AlertRow:
    return arow(
        ts,
        status=status,
        severity="warning",
        rule="data-drift",
        model=model,
        feature=feature,
        metric="psi",
    )


def summary(notes: Sequence[Notification]) -> list[tuple[str, str, int, list[str], list[str]]]:
    return [
        (
            n.receiver,
            n.kind,
            n.ts,
            sorted(a.feature or a.rule for a in n.firing),
            sorted(a.feature or a.rule for a in n.resolved),
        )
        for n in notes
    ]


def run(
    d: Dispatcher, timeline: list[tuple[int, list[AlertRow]]], until: int
) -> list[Notification]:
    """Submit each batch at its time, advancing the clock minute by minute like a watermark would."""
    out: list[Notification] = []
    batches = dict(timeline)
    for t in range(0, until + 1, MIN):
        if t in batches:
            d.submit(batches[t])
        out += d.advance(t)
    return out


@pytest.mark.parametrize(
    ("alert", "receivers"),
    [
        pytest.param(
            arow(MIN, severity="critical"),
            ["pagerduty", "slack"],
            id="critical-to-pagerduty-and-slack",
        ),
        pytest.param(warn(MIN), ["slack"], id="warning-to-slack-only"),
        pytest.param(arow(MIN, severity="info"), [], id="unrouted"),
    ],
)
def test_route_by_severity(alert: AlertRow, receivers: list[str]) -> None:
    d = Dispatcher(ROUTES)
    (routed,) = d.submit([alert])
    assert routed.receivers == receivers


@pytest.mark.parametrize(
    ("routes", "labels", "receivers"),
    [
        pytest.param(
            [{"match": {"model": "fraud"}, "receivers": ["a"]}, {"match": {}, "receivers": ["b"]}],
            {},
            ["a"],
            id="first-match-wins",
        ),
        pytest.param(
            [
                {"match": {"model": "fraud"}, "receivers": ["a"], "continue": True},
                {"match": {}, "receivers": ["b"]},
            ],
            {},
            ["a", "b"],
            id="continue",
        ),
        pytest.param(
            [
                {"match": {"rule": "data-*", "team": "risk"}, "receivers": ["a"]},
                {"match": {}, "receivers": ["b"]},
            ],
            {"team": "risk"},
            ["a"],
            id="glob-and-rule-labels",
        ),
        pytest.param(
            [
                {"match": {"rule": "data-*", "team": "risk"}, "receivers": ["a"]},
                {"match": {}, "receivers": ["b"]},
            ],
            {"team": "ops"},
            ["b"],
            id="rule-label-mismatch",
        ),
    ],
)
def test_route_matching(
    routes: list[dict[str, Any]], labels: dict[str, str], receivers: list[str]
) -> None:
    d = Dispatcher(
        [RouteConfig.model_validate(r) for r in routes], rule_labels=lambda _rule: labels
    )
    assert d.receivers_for(warn(MIN)) == receivers


def test_critical_goes_to_both_receivers_at_once_and_resolves() -> None:
    d = Dispatcher(ROUTES)
    notes = run(
        d, [(1 * MIN, [arow(MIN)]), (3 * MIN, [arow(3 * MIN, status="resolved")])], until=10 * MIN
    )
    assert summary(notes) == [
        ("pagerduty", "firing", 1 * MIN, ["errors"], []),
        ("slack", "firing", 1 * MIN, ["errors"], []),
        # the resolution waits for the group interval (5m by default) after the first notification
        ("pagerduty", "resolved", 6 * MIN, [], ["errors"]),
        ("slack", "resolved", 6 * MIN, [], ["errors"]),
    ]
    assert notes[0].new == [arow(MIN).dedup_key]


def test_grouping_waits_and_batches() -> None:
    d = Dispatcher(ROUTES)
    timeline = [
        (1 * MIN, [warn(MIN, feature="amount")]),
        (1 * MIN + 0, [warn(MIN, feature="amount"), warn(MIN, feature="age")]),
        (2 * MIN, [warn(2 * MIN, feature="country"), warn(2 * MIN, model="churn")]),
        (4 * MIN, [warn(4 * MIN, feature="device")]),
    ]
    notes = run(d, timeline, until=20 * MIN)
    assert summary(notes) == [
        # group_wait 30s: the group's first notification is due at 1m30s, seen at the 2m watermark,
        # and holds only alerts stamped by 1m30s
        ("slack", "firing", 1 * MIN + 30_000, ["age", "amount"], []),
        ("slack", "firing", 2 * MIN + 30_000, ["amount"], []),  # the churn group
        # group_interval 5m: later changes of the fraud group wait for 6m30s
        ("slack", "firing", 6 * MIN + 30_000, ["age", "amount", "country", "device"], []),
    ]
    assert [n.group_labels for n in notes] == [
        {"model": "fraud"},
        {"model": "churn"},
        {"model": "fraud"},
    ]
    assert sorted(notes[2].new) == sorted(
        warn(0, feature=f).dedup_key for f in ("country", "device")
    )


def test_same_notifications_however_often_the_clock_moves() -> None:
    alerts = [
        warn(MIN, feature="amount"),
        warn(2 * MIN, feature="age"),
        warn(9 * MIN, feature="amount", status="resolved"),
    ]
    fine = Dispatcher(ROUTES)
    fine_notes = run(fine, [(a.ts, [a]) for a in alerts], until=100 * MIN)
    coarse = Dispatcher(ROUTES)
    coarse.submit(alerts)
    coarse_notes = coarse.advance(100 * MIN)
    assert fine_notes == coarse_notes
    assert [n.kind for n in fine_notes] == ["firing", "firing", "resolved", "repeat"]


def test_repeat_interval_in_event_time() -> None:
    d = Dispatcher(ROUTES)
    d.submit([warn(0)])
    notes = d.advance(150 * MIN)
    assert [(n.kind, n.ts) for n in notes] == [
        ("firing", 30_000),
        ("repeat", 30_000 + 60 * MIN),
        ("repeat", 30_000 + 120 * MIN),
    ]
    assert all(n.firing for n in notes)
    assert len({n.id for n in notes}) == 3


def test_inhibition_mutes_warnings_of_the_same_model_and_records_them() -> None:
    d = Dispatcher(ROUTES, INHIBIT)
    d.submit([arow(MIN, model="fraud"), warn(MIN, model="fraud"), warn(MIN, model="churn")])
    with structlog.testing.capture_logs() as logs:
        notes = d.advance(10 * MIN)
    muted_logs = [e for e in logs if e["event"] == "alert.muted"]
    assert [(e["rule"], e["model"], e["reason"]) for e in muted_logs] == [
        ("data-drift", "fraud", "inhibited")
    ]
    assert sorted((n.receiver, n.group_labels.get("model", "-")) for n in notes) == [
        ("pagerduty", "-"),
        ("slack", "-"),
        ("slack", "churn"),
    ]
    assert [(m.model, m.reason, m.by) for m in d.muted] == [
        ("fraud", "inhibited", arow(MIN).dedup_key)
    ]
    # once the critical resolves, the warning is no longer muted and is sent at the next interval
    d.submit([arow(11 * MIN, status="resolved")])
    notes = d.advance(20 * MIN)
    assert ("slack", "firing", ["amount"]) in [
        (n.receiver, n.kind, [a.feature for a in n.firing]) for n in notes
    ]


def test_silence_matches_then_expires() -> None:
    store = MemorySilenceStore()
    silence = add_silence(
        store,
        ["model=fraud", "rule=data-*"],
        duration_ms=10 * MIN,
        author="ana",
        reason="retraining",
        now_ms=0,
    )
    d = Dispatcher(ROUTES, silences=store)
    d.submit([warn(MIN, model="fraud"), warn(MIN, model="churn")])
    notes = d.advance(5 * MIN)
    assert [n.group_labels["model"] for n in notes] == ["churn"]
    assert [(m.reason, m.by) for m in d.muted] == [("silenced", silence.id)]
    # the silence ends at 10m: the fraud alert goes out at the next group interval after that
    notes = d.advance(12 * MIN)
    assert [(n.group_labels["model"], n.ts) for n in notes] == [("fraud", 11 * MIN + 30_000)]


def test_expired_silence_mutes_nothing() -> None:
    store = MemorySilenceStore()
    s = add_silence(
        store, {"model": "fraud"}, duration_ms=60 * MIN, author="ana", reason="test", now_ms=0
    )
    expire_silence(store, s.id, now_ms=0)
    d = Dispatcher(ROUTES, silences=store)
    d.submit([warn(MIN)])
    assert len(d.advance(5 * MIN)) == 1
    assert d.muted == []


def test_resolution_of_a_never_notified_alert_sends_nothing() -> None:
    d = Dispatcher(ROUTES)
    d.submit([warn(MIN), warn(MIN, status="resolved")])  # fired and resolved inside group_wait
    assert d.advance(30 * MIN) == []


def test_state_round_trip_mid_group() -> None:
    d = Dispatcher(ROUTES)
    d.submit([warn(MIN)])
    first = d.advance(5 * MIN)
    restarted = Dispatcher(ROUTES)
    restarted.load_state(json.loads(json.dumps(d.dump_state())))
    restarted.submit([warn(8 * MIN, status="resolved")])
    d.submit([warn(8 * MIN, status="resolved")])
    assert restarted.advance(30 * MIN) == d.advance(30 * MIN)
    assert [n.kind for n in first] == ["firing"]


def test_drain_sends_what_waits() -> None:
    d = Dispatcher(ROUTES)
    d.submit([warn(MIN)])
    assert d.advance(MIN) == []
    assert [n.kind for n in d.drain()] == ["firing"]


def test_zero_intervals_do_not_loop() -> None:
    routes = [
        RouteConfig.model_validate(
            {
                "match": {},
                "receivers": ["slack"],
                "group_wait": 0,
                "group_interval": 0,
                "repeat_interval": 0,
            }
        )
    ]
    store = MemorySilenceStore()
    add_silence(store, {"model": "churn"}, duration_ms=MIN, author="a", reason="r", now_ms=0)
    d = Dispatcher(routes, silences=store)
    d.submit([warn(MIN), warn(MIN, model="churn")])
    notes = d.advance(MIN + 5)  # one repeat per millisecond at most: bounded, not endless
    assert 1 <= len(notes) <= 7
