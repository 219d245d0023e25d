"""Slack through slack-sdk: a bot token and channel (``chat.postMessage``), or an incoming webhook.

Messages are Block Kit: a header, one section per alert (severity, model, metric, value,
threshold, window and a link to the Grafana panel) and a context line. Every value that comes
from events (model, version, feature, segment, metric, the rendered message, group labels) is
text, never markup: names go in code spans through :func:`mrkdwn_code`, prose through
:func:`mrkdwn_text`, and the text objects are ``verbatim``, so no value can mention
``@channel``, draw a link or auto-link a URL. A group with many alerts
is split so that no message has more than 50 blocks and no text block more than 3000 characters.

When an alert resolves and the bot posted its message (the ``ts`` is known), the original
message is updated (``chat.update``) once all of its alerts have resolved, and a reply goes to
its thread before that; without a known ``ts`` (webhooks, or a message posted before the index
existed) a follow-up message is posted.

Each step of a notification (a post, an update, a reply) is recorded in a small index (a file
beside the outbox, or the store) before ``send`` returns, so a retried notification skips the
steps Slack already took.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from drifthouse.alerts.base import Notification
from drifthouse.alerts.receivers._common import (
    fmt_value,
    grafana_link,
    iso,
    parse_retry_after,
    plain,
)
from drifthouse.errors import NotifyError, NotifyRetryable, StoreError
from drifthouse.files import open_private
from drifthouse.logs import get_logger, hide_secret, scrub
from drifthouse.rows import AlertRow
from drifthouse.sinks.alert_state import AlertStateStore

__all__ = [
    "MAX_BLOCKS",
    "MAX_TEXT",
    "SlackMessageIndex",
    "SlackReceiver",
    "mrkdwn_code",
    "mrkdwn_inline",
    "mrkdwn_text",
    "render_messages",
]

log = get_logger("alerts.slack")

MAX_BLOCKS = 50
"""Slack's limit of blocks per message."""
MAX_TEXT = 3000
"""Slack's limit of characters per section text."""
_ALERTS_PER_MESSAGE = MAX_BLOCKS - 2  # a header and a context block around the alerts
_ICON = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "resolved": ":white_check_mark:",
}


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mrkdwn_text(value: str) -> str:
    """A value from events as mrkdwn text: one line (:func:`plain`) with ``&``, ``<`` and ``>``
    escaped as Slack asks, so it can start no mention (``<!channel>``), link or date.

    >>> mrkdwn_text("x <!channel> & <https://evil.example|log in>")
    'x &lt;!channel&gt; &amp; &lt;https://evil.example|log in&gt;'
    """
    return plain(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn_inline(value: str) -> str:
    """:func:`mrkdwn_text` with backticks as ``ˋ`` (U+02CB): mrkdwn has no escape for them, and
    one would open or close a code span around the text that follows."""
    return mrkdwn_text(value).replace("`", "\u02cb")


def mrkdwn_code(value: str) -> str:
    """A value from events in an inline code span, where Slack applies no formatting and links
    no URL (its own backticks become ``ˋ``, so it cannot end the span).

    >>> mrkdwn_code("x` *bold*")
    '`xˋ *bold*`'
    """
    return "`" + mrkdwn_inline(value) + "`" if value else "(none)"


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: no auto-links for bare URLs, no #channel or @mention parsing in the values
    return {"type": "mrkdwn", "text": _truncate(text, MAX_TEXT), "verbatim": True}


def _alert_block(alert: AlertRow, grafana_url: str | None) -> dict[str, Any]:
    icon = _ICON["resolved"] if alert.status == "resolved" else _ICON.get(alert.severity, "")
    scope = f"model {mrkdwn_code(alert.model)} version {mrkdwn_code(alert.model_version)}"
    if alert.feature:
        scope += f", feature {mrkdwn_code(alert.feature)}"
    if alert.segment:
        scope += f", segment {mrkdwn_code(alert.segment)}"
    lines = [
        f"{icon} *{mrkdwn_inline(alert.rule)}* ({mrkdwn_text(alert.severity)}, "
        f"{mrkdwn_text(alert.status)})",
        f"{scope}",
        f"{mrkdwn_code(alert.metric)} = *{fmt_value(alert.value)}*, "
        f"threshold {fmt_value(alert.threshold)}",
        f"window {iso(alert.window_start)} → {iso(alert.window_end)}",
    ]
    link = grafana_link(grafana_url, alert)
    if link:
        lines.append(f"<{link}|Grafana panel>")
    if alert.message:
        lines.append(mrkdwn_text(alert.message))
    return {"type": "section", "text": _mrkdwn("\n".join(lines))}


def render_messages(
    title: str, alerts: list[AlertRow], context: str, grafana_url: str | None = None
) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(fallback text, blocks)`` per message; alerts split to stay under Slack's limits."""
    out: list[tuple[str, list[dict[str, Any]]]] = []
    chunks = [
        alerts[i : i + _ALERTS_PER_MESSAGE] for i in range(0, len(alerts), _ALERTS_PER_MESSAGE)
    ] or [[]]
    for part, chunk in enumerate(chunks, start=1):
        head = title if len(chunks) == 1 else f"{title} ({part}/{len(chunks)})"
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _truncate(head, 150)}}
        ]
        blocks.extend(_alert_block(a, grafana_url) for a in chunk)
        blocks.append(
            {
                "type": "context",
                "elements": [_mrkdwn(context)],
            }
        )
        fallback = _truncate(
            f"{head}: "
            + "; ".join(
                f"{mrkdwn_inline(a.rule)} {mrkdwn_code(a.model)} {mrkdwn_text(a.status)}"
                for a in chunk
            ),
            3000,
        )
        out.append((fallback, blocks))
    return out


class SlackMessageIndex:
    """Where the bot's messages are (alert -> channel and ts) and which steps of which
    notification are done; kept in a JSON file (written atomically) when ``path`` is given, or
    in the store (``store``, table ``alert_state``, under the receiver's name ``key``), where a
    merger that moves to another host finds it."""

    _KEEP_DONE = 2_000

    def __init__(
        self, path: Path | None = None, *, store: AlertStateStore | None = None, key: str = ""
    ) -> None:
        self.path = path
        self.store = store
        self.key = key
        self._lock = threading.Lock()
        self.messages: dict[str, dict[str, Any]] = {}  # ts -> {channel, keys, resolved}
        self.by_alert: dict[str, str] = {}  # dedup_key -> ts
        self.done: dict[str, list[str]] = {}  # notification id -> steps done
        text: str | None = None
        if store is not None:
            text = store.read("slack", key)
        elif path is not None and path.exists():
            text = path.read_text()
        if text:
            data = json.loads(text)
            self.messages = data.get("messages", {})
            self.by_alert = data.get("by_alert", {})
            self.done = data.get("done", {})

    def save(self) -> None:
        if self.path is None and self.store is None:
            return
        if len(self.done) > self._KEEP_DONE:
            for key in list(self.done)[: len(self.done) - self._KEEP_DONE]:
                del self.done[key]
        data = {"messages": self.messages, "by_alert": self.by_alert, "done": self.done}
        if self.store is not None:
            try:
                self.store.write("slack", self.key, json.dumps(data))
            except StoreError as exc:
                # Kept in memory: this worker goes on; the next save writes it all.
                log.warning("slack.index_store_failed", receiver=self.key, error=str(exc))
            return
        assert self.path is not None
        tmp = self.path.with_suffix(".tmp")
        with open_private(tmp, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def step_done(self, note_id: str, step: str) -> bool:
        return step in self.done.get(note_id, [])

    def mark(self, note_id: str, step: str) -> None:
        self.done.setdefault(note_id, []).append(step)
        self.save()


class SlackReceiver:
    """Posts notifications to Slack.

    Parameters
    ----------
    token, channel:
        A bot token (``xoxb-...``) and the channel; messages can then be updated on resolve.
    webhook_url:
        An incoming webhook instead of a token (no updates: resolutions are follow-ups).
    base_url:
        The Web API base (default ``https://slack.com/api/``), for proxies and tests.
    grafana_url:
        A Grafana dashboard URL; each alert links to it with model, feature and metric variables.
    index:
        Where posted messages are remembered (see :class:`SlackMessageIndex`).

    The clients' own retries are turned off: the delivery worker retries, honouring
    ``Retry-After``, without blocking other receivers.
    """

    def __init__(
        self,
        *,
        name: str = "slack",
        token: str | None = None,
        channel: str | None = None,
        webhook_url: str | None = None,
        base_url: str | None = None,
        grafana_url: str | None = None,
        index: SlackMessageIndex | None = None,
        timeout: int = 10,
    ) -> None:
        if webhook_url is None and (token is None or not channel):
            raise NotifyError("a slack receiver needs 'token' and 'channel', or 'webhook_url'")
        self.name = name
        self.channel = channel
        self.grafana_url = grafana_url
        self.index = index or SlackMessageIndex()
        self.web: WebClient | None = None
        self.webhook: WebhookClient | None = None
        # slack-sdk logs request URLs (a webhook URL is a secret) and bodies at DEBUG.
        for secret in (token, webhook_url):
            hide_secret(
                secret, "slack_sdk", "slack_sdk.web.base_client", "slack_sdk.webhook.client"
            )
        if token is not None and channel:
            kwargs: dict[str, Any] = {"token": token, "timeout": timeout, "retry_handlers": []}
            if base_url:
                kwargs["base_url"] = base_url
            self.web = WebClient(**kwargs)
        else:
            assert webhook_url is not None
            self.webhook = WebhookClient(webhook_url, timeout=timeout, retry_handlers=[])

    # ---- one call to Slack ---------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except SlackApiError as exc:
            status = exc.response.status_code
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            if (
                status == 429
                or status >= 500
                or error in ("ratelimited", "internal_error", "fatal_error")
            ):
                retry_after = parse_retry_after(exc.response.headers)
                raise NotifyRetryable(
                    f"slack {what}: HTTP {status} {error or ''}".strip(), retry_after
                ) from exc
            raise NotifyError(
                f"slack {what} was refused: HTTP {status} {error or ''}; check the token, channel and scopes (chat:write)"
            ) from exc
        except (urllib.error.URLError, OSError, SlackClientError) as exc:
            raise NotifyRetryable(f"slack {what}: cannot reach Slack ({exc})") from exc

    def _post(
        self, text: str, blocks: list[dict[str, Any]], thread_ts: str | None = None
    ) -> str | None:
        if self.web is not None:
            kwargs: dict[str, Any] = {"channel": self.channel, "text": text, "blocks": blocks}
            if thread_ts:
                kwargs["thread_ts"] = thread_ts
            web = self.web
            resp = self._call("chat.postMessage", lambda: web.chat_postMessage(**kwargs))
            return str(resp["ts"])
        assert self.webhook is not None
        hook = self.webhook
        resp = self._call("webhook", lambda: hook.send(text=text, blocks=blocks))
        if resp.status_code == 429 or resp.status_code >= 500:
            raise NotifyRetryable(
                f"slack webhook: HTTP {resp.status_code}", parse_retry_after(resp.headers)
            )
        if resp.status_code != 200:
            raise NotifyError(
                f"slack webhook refused the message: HTTP {resp.status_code} {scrub(resp.body)[:200]}"
            )
        return None

    def _update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        assert self.web is not None
        web = self.web
        self._call(
            "chat.update", lambda: web.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        )

    # ---- a notification ------------------------------------------------------------------------

    def send(self, notification: Notification) -> None:
        n = notification
        labels = json.dumps(n.group_labels, sort_keys=True, ensure_ascii=False)
        context = (
            f"drifthouse · {mrkdwn_text(n.receiver)} · group {mrkdwn_code(labels)} · {iso(n.ts)}"
        )
        with self.index._lock:
            self._send_resolved(n, context)
            if n.kind == "repeat":
                to_post = list(n.firing)
                title = f"Still firing: {len(to_post)} alert(s)"
            else:
                new = set(n.new)
                to_post = [a for a in n.firing if a.dedup_key in new]
                title = f"{n.severity.upper()}: {len(to_post)} alert(s) firing"
            if to_post:
                for part, (text, blocks) in enumerate(
                    render_messages(title, to_post, context, self.grafana_url)
                ):
                    step = f"post:{part}"
                    if self.index.step_done(n.id, step):
                        continue
                    ts = self._post(text, blocks)
                    if ts is not None and self.channel:
                        chunk = to_post[
                            part * _ALERTS_PER_MESSAGE : (part + 1) * _ALERTS_PER_MESSAGE
                        ]
                        keys = [a.dedup_key for a in chunk]
                        self.index.messages[ts] = {
                            "channel": self.channel,
                            "keys": keys,
                            "resolved": {},
                        }
                        for key in keys:
                            self.index.by_alert[key] = ts
                    self.index.mark(n.id, step)
        log.debug("notify.slack_sent", receiver=n.receiver, kind=n.kind, id=n.id)

    def _send_resolved(self, n: Notification, context: str) -> None:
        if not n.resolved:
            return
        by_message: dict[str, list[AlertRow]] = {}
        orphans: list[AlertRow] = []
        for alert in n.resolved:
            ts = self.index.by_alert.get(alert.dedup_key) if self.web is not None else None
            if ts is not None and ts in self.index.messages:
                by_message.setdefault(ts, []).append(alert)
            else:
                orphans.append(alert)
        for ts, alerts in by_message.items():
            msg = self.index.messages[ts]
            step = f"resolve:{ts}"
            if self.index.step_done(n.id, step):
                continue
            for a in alerts:
                msg["resolved"][a.dedup_key] = msgspec.to_builtins(a)
            if set(msg["keys"]) <= set(msg["resolved"]):
                # every alert of the message has resolved: turn the message itself green,
                # showing each alert as it was when it resolved
                rendered = [msgspec.convert(msg["resolved"][k], AlertRow) for k in msg["keys"]]
                title = f"RESOLVED: {len(rendered)} alert(s)"
                text, blocks = render_messages(title, rendered, context, self.grafana_url)[0]
                self._update(msg["channel"], ts, text, blocks)
                for key in msg["keys"]:
                    self.index.by_alert.pop(key, None)
                del self.index.messages[ts]
            else:
                text, blocks = render_messages(
                    f"Resolved: {len(alerts)} alert(s)", alerts, context, self.grafana_url
                )[0]
                self._post(text, blocks, thread_ts=ts)
            self.index.mark(n.id, step)
        if orphans:
            for part, (text, blocks) in enumerate(
                render_messages(
                    f"RESOLVED: {len(orphans)} alert(s)", orphans, context, self.grafana_url
                )
            ):
                step = f"resolved-post:{part}"
                if self.index.step_done(n.id, step):
                    continue
                self._post(text, blocks)
                self.index.mark(n.id, step)
