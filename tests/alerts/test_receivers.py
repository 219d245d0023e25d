"""Receivers against the local fake APIs, through the real slack-sdk and httpx clients."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from drifthouse.alerts.base import Notification
from drifthouse.alerts.receivers import build_receivers
from drifthouse.alerts.receivers._common import parse_retry_after
from drifthouse.alerts.receivers.console import ConsoleReceiver
from drifthouse.alerts.receivers.pagerduty import PagerDutyReceiver
from drifthouse.alerts.receivers.slack import MAX_BLOCKS, MAX_TEXT, SlackMessageIndex, SlackReceiver
from drifthouse.alerts.receivers.webhook import WebhookReceiver
from drifthouse.config import Config
from drifthouse.errors import NotifyError, NotifyRetryable
from drifthouse.rows import AlertRow
from tests.alerts.conftest import MIN, arow
from tests.fakes import FakeApi


def note(
    firing: Sequence[AlertRow] = (),
    resolved: Sequence[AlertRow] = (),
    *,
    kind: str = "firing",
    receiver: str = "slack",
    nid: str = "n1",
    new: list[str] | None = None,
) -> Notification:
    return Notification(
        id=nid,
        receiver=receiver,
        kind=kind,
        ts=MIN,
        group_key="0:{}",
        group_labels={"model": "fraud"},
        firing=list(firing),
        resolved=list(resolved),
        new=[a.dedup_key for a in firing] if new is None else new,
    )


def slack_bot(api: FakeApi, tmp_path: Path | None = None) -> SlackReceiver:
    index = SlackMessageIndex(tmp_path / "slack.json") if tmp_path else None
    return SlackReceiver(
        token="xoxb-test",
        channel="#ml-alerts",
        base_url=f"{api.url}/api/",
        grafana_url="https://grafana.example/d/drift",
        index=index,
    )


# ---- Slack -------------------------------------------------------------------------------------


def test_slack_block_kit_message(api: FakeApi) -> None:
    slack_bot(api).send(note([arow(MIN, feature="amount", value=0.31, threshold=0.25)]))
    (call,) = api.slack_calls("chat.postMessage")
    assert call.headers["Authorization"] == "Bearer xoxb-test"
    body = call.body
    assert body["channel"] == "#ml-alerts"
    assert body["blocks"][0]["type"] == "header"
    text = body["blocks"][1]["text"]["text"]
    for needle in (
        "errors",
        "critical",
        "`fraud`",
        "`amount`",
        "*0.31*",
        "threshold 0.25",
        "1970-01-01T00:00:00.000Z → 1970-01-01T00:01:00.000Z",
        "https://grafana.example/d/drift?var-model=fraud",
    ):
        assert needle in text


def test_slack_splits_big_groups_under_limits(api: FakeApi) -> None:
    alerts = [arow(MIN, feature=f"f{i}", key=f"k{i}", value=i) for i in range(120)]
    long = AlertRow(
        **{
            **{f: getattr(alerts[0], f) for f in AlertRow.__struct_fields__},
            "message": "x" * 5000,
            "dedup_key": "long",
        }
    )
    slack_bot(api).send(note([*alerts, long]))
    calls = api.slack_calls("chat.postMessage")
    assert len(calls) == 3
    assert all(len(c.body["blocks"]) <= MAX_BLOCKS for c in calls)
    texts = [b["text"]["text"] for c in calls for b in c.body["blocks"] if b["type"] == "section"]
    assert len(texts) == 121
    assert max(len(t) for t in texts) <= MAX_TEXT
    assert calls[0].body["blocks"][0]["text"]["text"].endswith("(1/3)")


def test_slack_resolve_updates_the_original_message(api: FakeApi, tmp_path: Path) -> None:
    a, b = arow(MIN, feature="amount", key="a"), arow(MIN, feature="age", key="b")
    slack_bot(api, tmp_path).send(note([a, b]))
    (post,) = api.slack_calls("chat.postMessage")
    ts = next(iter(api.messages))
    # a fresh receiver (a restart) still knows the message from its index file
    receiver = slack_bot(api, tmp_path)
    receiver.send(
        note(
            [b],
            [arow(2 * MIN, status="resolved", key="a", feature="amount")],
            kind="resolved",
            nid="n2",
            new=[],
        )
    )
    reply = api.slack_calls("chat.postMessage")[-1]
    assert reply.body["thread_ts"] == ts  # one of two resolved: a reply in the thread
    receiver.send(
        note(
            [],
            [arow(3 * MIN, status="resolved", key="b", feature="age")],
            kind="resolved",
            nid="n3",
            new=[],
        )
    )
    (update,) = api.slack_calls("chat.update")
    assert update.body["ts"] == ts
    assert update.body["channel"] == "#ml-alerts"
    assert "RESOLVED" in update.body["blocks"][0]["text"]["text"]
    sections = [b["text"]["text"] for b in update.body["blocks"] if b["type"] == "section"]
    assert ["`amount`" in sections[0], "`age`" in sections[1]] == [True, True]  # both, as resolved
    assert len(api.slack_calls("chat.postMessage")) == 2  # the original and the thread reply
    assert post.body["text"].startswith("CRITICAL")


def test_slack_webhook_posts_follow_ups(api: FakeApi) -> None:
    hook = SlackReceiver(webhook_url=f"{api.url}/hooks/T000/B000/XXXX")
    hook.send(note([arow(MIN)]))
    hook.send(note([], [arow(2 * MIN, status="resolved")], kind="resolved", nid="n2", new=[]))
    calls = api.slack_calls("webhook")
    assert len(calls) == 2
    assert "RESOLVED" in calls[1].body["blocks"][0]["text"]["text"]


def test_slack_retry_skips_steps_already_done(api: FakeApi) -> None:
    alerts = [arow(MIN, feature=f"f{i}", key=f"k{i}") for i in range(60)]  # two messages
    receiver = slack_bot(api)
    api.fail(
        "/api/chat.postMessage", 503, after=1
    )  # the first message goes through, the second fails
    with pytest.raises(NotifyRetryable):
        receiver.send(note(alerts))
    receiver.send(note(alerts))  # the delivery worker's retry
    posts = api.slack_calls("chat.postMessage")
    assert [p.body["blocks"][0]["text"]["text"][-5:] for p in posts] == ["(1/2)", "(2/2)"]


@pytest.mark.parametrize(
    ("status", "retry_after", "error", "expected_after"),
    [
        pytest.param(429, 7, NotifyRetryable, 7.0, id="429-retry-after"),
        pytest.param(500, None, NotifyRetryable, None, id="500"),
        pytest.param(503, None, NotifyRetryable, None, id="503"),
    ],
)
def test_slack_failures(
    api: FakeApi,
    status: int,
    retry_after: float | None,
    error: type[Exception],
    expected_after: float | None,
) -> None:
    api.fail("/api/chat.postMessage", status, retry_after=retry_after)
    with pytest.raises(error) as info:
        slack_bot(api).send(note([arow(MIN)]))
    assert isinstance(info.value, NotifyRetryable)
    assert info.value.retry_after == expected_after


def test_slack_bad_token_is_not_retried(api: FakeApi) -> None:
    receiver = SlackReceiver(token="xoxp-wrong", channel="#c", base_url=f"{api.url}/api/")
    with pytest.raises(NotifyError, match="refused") as info:
        receiver.send(note([arow(MIN)]))
    assert not isinstance(info.value, NotifyRetryable)


def test_slack_connection_refused_is_retryable(api: FakeApi) -> None:
    api.down()
    with pytest.raises(NotifyRetryable, match="cannot reach"):
        slack_bot(api).send(note([arow(MIN)]))
    hook = SlackReceiver(webhook_url=f"{api.url}/hooks/T/B/X")
    with pytest.raises(NotifyRetryable):
        hook.send(note([arow(MIN)]))


def test_slack_webhook_429(api: FakeApi) -> None:
    api.fail("/hooks/", 429, retry_after=2)
    with pytest.raises(NotifyRetryable) as info:
        SlackReceiver(webhook_url=f"{api.url}/hooks/T/B/X").send(note([arow(MIN)]))
    assert info.value.retry_after == 2.0


# ---- PagerDuty ---------------------------------------------------------------------------------


def pagerduty(api: FakeApi) -> PagerDutyReceiver:
    return PagerDutyReceiver(routing_key="R0UT1NGKEY", url=f"{api.url}/v2/enqueue")


def test_pagerduty_trigger_and_resolve(api: FakeApi) -> None:
    pd = pagerduty(api)
    alert = arow(5 * MIN, severity="critical", value=0.2, threshold=0.05)
    pd.send(note([alert], receiver="pagerduty"))
    pd.send(
        note(
            [],
            [arow(9 * MIN, status="resolved")],
            kind="resolved",
            receiver="pagerduty",
            nid="n2",
            new=[],
        )
    )
    trigger, resolve = api.pd_events()
    assert trigger["routing_key"] == "R0UT1NGKEY"
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == alert.dedup_key
    payload = trigger["payload"]
    assert payload["severity"] == "critical"
    assert payload["timestamp"] == "1970-01-01T00:05:00.000Z"  # event time, explicit
    assert payload["custom_details"]["threshold"] == 0.05
    assert payload["custom_details"]["rule"] == "errors"
    assert resolve == {
        "routing_key": "R0UT1NGKEY",
        "event_action": "resolve",
        "dedup_key": alert.dedup_key,
    }
    assert api.incidents[alert.dedup_key].status == "resolved"


def test_pagerduty_warning_severity_and_repeat_dedups(api: FakeApi) -> None:
    pd = pagerduty(api)
    alert = arow(MIN, severity="warning")
    pd.send(note([alert], receiver="pagerduty"))
    pd.send(note([alert], kind="repeat", receiver="pagerduty", nid="n2", new=[]))
    pd.send(
        note([alert], kind="resolved", receiver="pagerduty", nid="n3", new=[])
    )  # old firing alerts are not re-sent
    assert [e["payload"]["severity"] for e in api.pd_events()] == ["warning", "warning"]
    assert len(api.incidents) == 1
    assert api.incidents[alert.dedup_key].triggers == 2


@pytest.mark.parametrize(
    ("status", "retry_after", "retryable"),
    [
        pytest.param(429, 30, True, id="429"),
        pytest.param(500, None, True, id="500"),
        pytest.param(502, None, True, id="502"),
        pytest.param(400, None, False, id="400"),
    ],
)
def test_pagerduty_failures(
    api: FakeApi, status: int, retry_after: float | None, retryable: bool
) -> None:
    api.fail("/v2/enqueue", status, retry_after=retry_after)
    with pytest.raises(NotifyError) as info:
        pagerduty(api).send(note([arow(MIN)], receiver="pagerduty"))
    assert isinstance(info.value, NotifyRetryable) is retryable
    if retry_after is not None:
        assert isinstance(info.value, NotifyRetryable)
        assert info.value.retry_after == retry_after


def test_pagerduty_down_is_retryable_and_key_never_shown(api: FakeApi) -> None:
    api.down()
    pd = pagerduty(api)
    with pytest.raises(NotifyRetryable) as info:
        pd.send(note([arow(MIN)], receiver="pagerduty"))
    assert "R0UT1NGKEY" not in str(info.value)
    assert "R0UT1NGKEY" not in repr(pd)


# ---- webhook, console, factory -----------------------------------------------------------------


def test_webhook(api: FakeApi) -> None:
    hook = WebhookReceiver(
        url=f"{api.url}/webhook/alerts", headers={"Authorization": "Bearer s3cret"}
    )
    hook.send(note([arow(MIN)], receiver="hook"))
    (call,) = api.ok("/webhook")
    assert call.body["id"] == "n1"
    assert call.body["firing"][0]["rule"] == "errors"
    assert call.headers["Authorization"] == "Bearer s3cret"
    assert call.headers["idempotency-key"] == "n1"
    api.fail("/webhook", 503, retry_after=1)
    with pytest.raises(NotifyRetryable):
        hook.send(note([arow(MIN)], receiver="hook"))


def test_console() -> None:
    out = io.StringIO()
    ConsoleReceiver(file=out).send(
        note([arow(MIN, rule="[odd] rule")], [arow(MIN, status="resolved", key="other")])
    )
    text = out.getvalue()
    assert "FIRING" in text
    assert "[odd] rule" in text
    assert "RESOLVED" in text


def test_build_receivers_from_config(api: FakeApi, tmp_path: Path) -> None:
    cfg = Config.model_validate(
        {
            "receivers": {
                "slack": {
                    "type": "slack",
                    "channel": "#c",
                    "token": "xoxb-1",
                    "base_url": f"{api.url}/api/",
                },
                "hook": {"type": "slack", "webhook_url": f"{api.url}/hooks/a"},
                "pagerduty": {
                    "type": "pagerduty",
                    "routing_key": "k",
                    "url": f"{api.url}/v2/enqueue",
                },
                "web": {"type": "webhook", "url": f"{api.url}/webhook"},
                "retrain": {"type": "kafka", "topic": "retrain"},
                "console": {"type": "console"},
            }
        }
    )
    receivers = build_receivers(cfg.receivers, state_dir=tmp_path)
    assert sorted(receivers) == ["console", "hook", "pagerduty", "retrain", "slack", "web"]
    receivers["slack"].send(note([arow(MIN)]))
    assert json.loads((tmp_path / "slack-slack.json").read_text())["by_alert"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "12"}, 12.0, id="seconds"),
        pytest.param({"retry-after": "1.5"}, 1.5, id="lowercase-fraction"),
        pytest.param({"Retry-After": "Thu, 01 Jan 1970 00:01:40 GMT"}, 40.0, id="http-date"),
        pytest.param({"Retry-After": "soon"}, None, id="garbage"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=60.0) == expected
