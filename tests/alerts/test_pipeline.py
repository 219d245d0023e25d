"""End to end: metric rows -> rules -> routes -> delivery -> Slack and PagerDuty (fake APIs, real clients)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drifthouse.alerts.service import Alerting
from drifthouse.config import Config
from tests.alerts.conftest import MIN, mrow
from tests.fakes import FakeApi


def config(api: FakeApi, outbox: Path) -> Config:
    return Config.model_validate(
        {
            "rules": [
                {
                    "name": "serving-errors",
                    "metric": "error_rate_5xx",
                    "when": "value > 0.05",
                    "severity": "critical",
                },
                {
                    "name": "data-drift",
                    "metric": "psi",
                    "when": "value > 0.25",
                    "clear": "value < 0.1",
                    "for": 2,
                    "severity": "warning",
                },
            ],
            "routes": [
                {
                    "match": {"severity": "critical"},
                    "receivers": ["pagerduty", "slack"],
                    "group_wait": "0s",
                    "group_interval": "1m",
                },
                {
                    "match": {"severity": "warning"},
                    "receivers": ["slack"],
                    "group_by": ["model"],
                    "group_wait": "0s",
                    "group_interval": "1m",
                    "repeat_interval": "24h",
                },
            ],
            "inhibit": [
                {
                    "source": {"severity": "critical"},
                    "target": {"severity": "warning"},
                    "equal": ["model"],
                }
            ],
            "receivers": {
                "slack": {
                    "type": "slack",
                    "channel": "#ml-alerts",
                    "token": "xoxb-test",
                    "base_url": f"{api.url}/api/",
                },
                "pagerduty": {
                    "type": "pagerduty",
                    "routing_key": "rk",
                    "url": f"{api.url}/v2/enqueue",
                },
            },
            "alerting": {"outbox_dir": str(outbox), "max_attempts": 5, "max_backoff": "100ms"},
        }
    )


def minute(alerting: Alerting, m: int, **values: float) -> list[Any]:
    rows = []
    if "err" in values:
        rows.append(
            mrow(
                m,
                values["err"],
                metric="error_rate_5xx",
                feature="",
                model=str(values.get("model", "fraud")),
            )
        )
    if "psi" in values:
        rows.append(mrow(m, values["psi"], model="churn"))
    return alerting.process(rows, watermark=m * MIN)


def test_critical_to_pagerduty_and_slack_warning_to_slack_only(
    api: FakeApi, tmp_path: Path
) -> None:
    alerting = Alerting(config(api, tmp_path))
    stored = []
    for m, err, psi in [
        (1, 0.0, 0.3),
        (2, 0.2, 0.3),
        (3, 0.2, 0.05),
        (4, 0.0, 0.05),
        (5, 0.0, 0.05),
    ]:
        stored += minute(alerting, m, err=err, psi=psi)
    alerting.close()
    assert sorted((a.ts // MIN, a.rule, a.status, a.receivers) for a in stored) == [
        (2, "data-drift", "firing", ["slack"]),
        (2, "serving-errors", "firing", ["pagerduty", "slack"]),
        (3, "data-drift", "resolved", ["slack"]),
        (4, "serving-errors", "resolved", ["pagerduty", "slack"]),
    ]
    assert [(e["event_action"], e.get("payload", {}).get("severity")) for e in api.pd_events()] == [
        ("trigger", "critical"),
        ("resolve", None),
    ]
    posts = api.slack_calls("chat.postMessage")
    assert sorted(p.body["text"].split(":")[0] for p in posts) == ["CRITICAL", "WARNING"]
    assert len(api.slack_calls("chat.update")) == 2  # both messages turned resolved in place


def test_worker_restart_mid_alert_no_repage_and_resolve_still_sent(
    api: FakeApi, tmp_path: Path
) -> None:
    first = Alerting(config(api, tmp_path))
    minute(first, 1, err=0.2)
    minute(first, 2, err=0.3)
    first.close()  # saves state; a real crash would lose only what follows the last save
    assert [e["event_action"] for e in api.pd_events()] == ["trigger"]

    second = Alerting(config(api, tmp_path))  # loads state, outbox and Slack index from tmp_path
    assert [a.rule for a in second.engine.firing()] == ["serving-errors"]
    minute(second, 2, err=0.3)  # the same window again (offsets not yet committed)
    minute(second, 3, err=0.4)
    minute(second, 4, err=0.0)
    second.close()
    events = api.pd_events()
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert len({e["dedup_key"] for e in events}) == 1
    assert len(api.slack_calls("chat.postMessage")) == 1
    (update,) = api.slack_calls("chat.update")
    assert "RESOLVED" in update.body["text"]


def test_crash_after_send_before_state_save_sends_nothing_twice(
    api: FakeApi, tmp_path: Path
) -> None:
    cfg = config(api, tmp_path)
    first = Alerting(cfg)
    first.save_state()  # the last save before the crash: nothing firing yet
    minute(first, 1, err=0.2)
    assert first.flush(timeout=10)
    first.worker.stop()  # type: ignore[union-attr]  # crash: state not saved after the page
    second = Alerting(cfg)
    minute(second, 1, err=0.2)  # re-processed after the restart: the same notifications, same ids
    minute(second, 2, err=0.0)
    second.close()
    assert [e["event_action"] for e in api.pd_events()] == ["trigger", "resolve"]
    assert len(api.slack_calls("chat.postMessage")) == 1


def test_receiver_down_then_back_through_the_pipeline(api: FakeApi, tmp_path: Path) -> None:
    cfg = config(api, tmp_path)
    api.fail("/v2/enqueue", 503, times=2)
    api.fail("/api/chat.postMessage", 429, retry_after=0.05, times=2)
    alerting = Alerting(cfg)
    for m in range(1, 7):
        minute(alerting, m, err=0.2 if m % 3 else 0.0)  # fires, resolves, fires again
    assert alerting.flush(timeout=20)
    alerting.close()
    assert [e["event_action"] for e in api.pd_events()] == [
        "trigger",
        "resolve",
        "trigger",
        "resolve",
    ]
    assert [r.status for r in api.requests if r.path == "/v2/enqueue"][:3] == [503, 503, 202]


def test_replay_without_notify_records_but_sends_nothing(api: FakeApi, tmp_path: Path) -> None:
    alerting = Alerting(config(api, tmp_path), notify=False, state_dir=tmp_path / "replay")
    stored = minute(alerting, 1, err=0.2)
    alerting.close()
    assert [(a.status, a.receivers) for a in stored] == [("firing", ["pagerduty", "slack"])]
    assert api.requests == []


@pytest.mark.parametrize(
    "step", [1, 7, 60], ids=["every-minute", "every-7-minutes", "once-an-hour"]
)
def test_notifications_do_not_depend_on_how_often_the_watermark_moves(
    api: FakeApi, tmp_path: Path, step: int
) -> None:
    alerting = Alerting(config(api, tmp_path), notify=False, state_dir=tmp_path / "x")
    notes = []
    for m in range(1, 61):
        values = {"err": 0.2 if 10 <= m < 20 else 0.0, "psi": 0.3 if 30 <= m < 45 else 0.0}
        rows = [
            mrow(m, values["err"], metric="error_rate_5xx", feature=""),
            mrow(m, values["psi"], model="churn"),
        ]
        alerting.dispatcher.submit(alerting.engine.process(rows))
        if m % step == 0:
            notes += alerting.advance(m * MIN)
    notes += alerting.drain()
    got = [(n.receiver, n.kind, n.ts) for n in notes]
    assert got == [
        ("pagerduty", "firing", 10 * MIN),
        ("slack", "firing", 10 * MIN),
        ("pagerduty", "resolved", 20 * MIN),
        ("slack", "resolved", 20 * MIN),
        ("slack", "firing", 31 * MIN),
        ("slack", "resolved", 45 * MIN),
    ]


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _backfill_config(**alerting: object) -> Config:
    return Config.model_validate(
        {
            "windows": [{"size": "1m"}],
            "rules": [
                {"name": "drift", "metric": "psi", "when": "value > 0.2", "severity": "warning"}
            ],
            "routes": [{"receivers": ["mem"], "group_wait": "0s", "repeat_interval": "5m"}],
            "receivers": {"mem": {"type": "console"}},
            "alerting": alerting,
        }
    )


@pytest.mark.parametrize(
    ("alerting", "wall_steps", "repeats"),
    [
        # 600 minutes of event time replayed in one wall-clock instant: no repeat at all.
        pytest.param({}, [0.0], 0, id="backfill-default"),
        # An hour of wall clock between the two halves: one repeat (the default is 1h).
        pytest.param({}, [0.0, 3_600.0], 1, id="default-after-an-hour"),
        pytest.param({"repeat_wall_clock": "10m"}, [0.0, 300.0], 0, id="10m-not-yet"),
        pytest.param({"repeat_wall_clock": "10m"}, [0.0, 600.0, 600.0], 2, id="10m-each-step"),
        pytest.param({"repeat_wall_clock": "0s"}, [0.0], 119, id="off"),
    ],
)
def test_repeats_are_rate_limited_by_wall_clock_too(
    alerting: dict[str, str], wall_steps: list[float], repeats: int
) -> None:
    """Backfilling through Kafka runs event time fast: a still-firing alert would repeat every
    ``repeat_interval`` of event time, hundreds of times a second. A repeat also waits
    ``alerting.repeat_wall_clock`` of wall-clock time since the group's last notification."""
    from drifthouse.alerts.base import MemoryReceiver

    clock = FakeClock()
    mem = MemoryReceiver()
    service = Alerting(
        _backfill_config(**alerting), receivers={"mem": mem}, clock=clock, start=False
    )
    minutes = 600
    per_step = minutes // len(wall_steps)
    m = 0
    for step in wall_steps:
        clock.now += step
        for _ in range(per_step):
            m += 1
            service.process([mrow(m, 0.5)])
    assert service.worker is not None
    kinds = [n.kind for n in service.worker.outbox.pending()]
    assert kinds[0] == "firing"
    assert kinds.count("repeat") == repeats
    assert service.repeats_held == 600 // 5 - 1 - repeats
