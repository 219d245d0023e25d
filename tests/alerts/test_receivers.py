"""Receivers against the local fake APIs, through the real slack-sdk and httpx clients."""

from __future__ import annotations

import io
import json
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from drifthouse.alerts.base import Notification
from drifthouse.alerts.receivers import build_receivers
from drifthouse.alerts.receivers._common import parse_retry_after, plain
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


# ---- event data is data: escaping ---------------------------------------------------------------

EVIL = "x` <!channel> <https://evil.example|re-authenticate> & *bold* #general"
_ANGLE = re.compile(r"<([^<>]*)>")


def evil_row(field: str, *, status: str = "firing", key: str = "evil") -> AlertRow:
    base = arow(MIN, status=status, feature="amount", key=key)
    values = {f: getattr(base, f) for f in AlertRow.__struct_fields__}
    values[field] = EVIL
    values["message"] = f"drift on {EVIL}"  # as a template would render it
    return AlertRow(**values)


def slack_texts(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every mrkdwn text of a Slack message (and its fallback), with its text object."""
    out: list[tuple[str, dict[str, Any]]] = [(body["text"], {"type": "mrkdwn", "verbatim": True})]
    for block in body["blocks"]:
        objects = [block["text"]] if "text" in block else block.get("elements", [])
        out.extend((o["text"], o) for o in objects if o["type"] == "mrkdwn")
    return out


def assert_inert(body: dict[str, Any]) -> None:
    """No Slack control sequence but drifthouse's own Grafana link; no value left a code span."""
    for text, obj in slack_texts(body):
        assert "<!channel>" not in text
        assert "evil.example|" not in "".join(_ANGLE.findall(text))
        for inner in _ANGLE.findall(text):
            assert inner.startswith("https://grafana.example/d/drift?"), inner
            assert inner.endswith("|Grafana panel"), inner
        if "evil.example" in text:
            assert "&lt;!channel&gt; &lt;https://evil.example|re-authenticate&gt; &amp;" in text
        # every code span closes where drifthouse put it (the message is the operator's prose:
        # a backtick of a value there can only change formatting, escaped as it is)
        names = "\n".join(ln for ln in text.split("\n") if not ln.startswith("drift on"))
        assert names.count("`") % 2 == 0, text
        assert obj.get("verbatim") is True  # no auto-linking of URLs, #channels or mentions


@pytest.mark.parametrize(
    "field", ["model", "model_version", "feature", "segment", "metric", "rule", "message"]
)  # (the message is always a rendered template holding the value)
@pytest.mark.parametrize("client", ["bot", "webhook"])
def test_slack_event_values_are_text_not_markup(api: FakeApi, client: str, field: str) -> None:
    receiver = (
        slack_bot(api)
        if client == "bot"
        else SlackReceiver(
            webhook_url=f"{api.url}/hooks/T/B/X", grafana_url="https://grafana.example/d/drift"
        )
    )
    firing = evil_row(field)
    group = {"model": EVIL}
    n = note([firing])
    receiver.send(msgspec.structs.replace(n, group_labels=group))
    resolved = msgspec.structs.replace(
        note([], [evil_row(field, status="resolved")], kind="resolved", nid="n2", new=[]),
        group_labels=group,
    )
    receiver.send(resolved)
    calls = api.slack_calls("webhook" if client == "webhook" else "")
    assert [c.path.rsplit("/", 1)[-1] for c in calls] == (
        ["chat.postMessage", "chat.update"] if client == "bot" else ["X", "X"]
    )
    for call in calls:
        assert_inert(call.body)
    section = calls[0].body["blocks"][1]["text"]["text"]
    if field not in ("message", "rule"):  # a value in a code span shows as it is, in one span
        assert (
            "`xˋ &lt;!channel&gt; &lt;https://evil.example|re-authenticate&gt; &amp; *bold* #general`"
            in section
        )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param("fraud\x1b[2J\x07", "fraud\ufffd[2J\ufffd", id="ansi-escape"),
        pytest.param("fraud\nFAKE LINE\r\t", "fraud FAKE LINE  ", id="newlines"),
        pytest.param("fraud\u2028FAKE\u2029", "fraud FAKE ", id="unicode-line-separators"),
        pytest.param("fraud\u202egnp.exe", "fraud\ufffdgnp.exe", id="bidi-override"),
        pytest.param("fraud\x85\x9b31m", "fraud\ufffd\ufffd31m", id="c1-controls"),
        pytest.param("mödel-ü 🚀", "mödel-ü 🚀", id="unicode-kept"),
    ],
)
def test_plain_text_has_no_controls(value: str, shown: str) -> None:
    assert plain(value) == shown
    assert plain(value * 1000, limit=50) == (shown * 1000)[:49] + "…"


def _controls(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in "\u200d"]


def test_pagerduty_summary_is_plain_text_and_bounded(api: FakeApi) -> None:
    model = "fraud\x1b[31m\nRESOLVED: all good\u202e"
    base = arow(MIN, model=model, feature="amount\x00")
    values = {f: getattr(base, f) for f in AlertRow.__struct_fields__}
    long = AlertRow(**{**values, "message": f"{model} " * 400})
    short = AlertRow(**{**values, "message": "", "dedup_key": "short"})
    pagerduty(api).send(note([long, short], receiver="pagerduty"))
    for event in api.pd_events():
        payload = event["payload"]
        for name in ("summary", "source", "component", "group", "class"):
            assert not _controls(payload[name]), (name, payload[name])
        assert len(payload["summary"]) <= 1024
        assert payload["custom_details"]["model"] == model  # details are data, exact
    assert "RESOLVED: all good" in api.pd_events()[1]["payload"]["summary"]


def test_webhook_text_has_no_controls(api: FakeApi) -> None:
    hook = WebhookReceiver(url=f"{api.url}/webhook/alerts")
    alert = arow(MIN, model="fraud\x1b[2J\u202e", feature="amount\n")
    n = msgspec.structs.replace(note([alert], receiver="hook"), group_labels={"model": alert.model})
    hook.send(n)
    (call,) = api.ok("/webhook")
    body = call.body
    sent = body["firing"][0]
    for name in ("rule", "model", "model_version", "feature", "segment", "metric", "message"):
        assert not _controls(sent[name]), (name, sent[name])
    assert sent["model"] == "fraud\ufffd[2J\ufffd"
    assert not _controls(body["group_labels"]["model"])
    assert sent["dedup_key"] == alert.dedup_key  # identities untouched


def test_console_shows_no_terminal_escapes() -> None:
    out = io.StringIO()
    ConsoleReceiver(file=out).send(note([arow(MIN, model="fraud\x1b[2J\x1b]0;pwned\x07")]))
    text = out.getvalue()
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "fraud\ufffd[2J" in text
