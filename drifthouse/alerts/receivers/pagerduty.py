"""PagerDuty through the Events API v2 (``POST /v2/enqueue``), with httpx.

The ``pagerduty`` package's ``EventsApiV2Client`` refuses base URLs that are not https (so it
cannot be aimed at an on-premises gateway or a test server over http) and sleeps through 429s
itself; the Events API is one JSON POST, so drifthouse speaks it directly.

Each firing alert is a ``trigger`` and each resolution a ``resolve``, keyed by the alert's
stable ``dedup_key``: PagerDuty folds a repeated trigger into the open incident, which is what
makes a retried or replayed notification harmless.
"""

from __future__ import annotations

from typing import Any

import httpx

from drifthouse.alerts.base import Notification
from drifthouse.alerts.receivers._common import grafana_link, iso, parse_retry_after, plain
from drifthouse.errors import NotifyError, NotifyRetryable
from drifthouse.logs import get_logger, hide_secret, scrub
from drifthouse.rows import AlertRow

__all__ = ["DEFAULT_EVENTS_URL", "PagerDutyReceiver", "event_for"]

log = get_logger("alerts.pagerduty")

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_SUMMARY = 1024
"""The Events API's limit on ``payload.summary``."""
MAX_FIELD = 255
"""How long ``source``, ``component``, ``group`` and ``class`` may be (shown as titles)."""
_SEVERITY = {"critical": "critical", "warning": "warning"}


def event_for(alert: AlertRow, routing_key: str, grafana_url: str | None = None) -> dict[str, Any]:
    """The Events API v2 body for one alert state change."""
    if alert.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": alert.dedup_key}
    summary = alert.message or f"{alert.rule}: {alert.metric} of {alert.model} is {alert.value:.4g}"
    # The summary and the fields PagerDuty shows as titles are plain text for people: no control
    # characters, and within the Events API's bounds. custom_details keep the exact values (data).
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.dedup_key,
        "payload": {
            "summary": plain(summary, MAX_SUMMARY),
            "source": plain(f"drifthouse/{alert.model}", MAX_FIELD),
            "severity": _SEVERITY.get(alert.severity, "warning"),
            "timestamp": iso(alert.ts),
            "component": plain(alert.model, MAX_FIELD),
            "group": plain(alert.feature or alert.metric, MAX_FIELD),
            "class": plain(alert.metric, MAX_FIELD),
            "custom_details": {
                "rule": alert.rule,
                "model": alert.model,
                "model_version": alert.model_version,
                "feature": alert.feature,
                "segment": alert.segment,
                "metric": alert.metric,
                "value": alert.value,
                "threshold": alert.threshold,
                "window_start": iso(alert.window_start),
                "window_end": iso(alert.window_end),
                "run_id": alert.run_id,
            },
        },
        "client": "drifthouse",
    }
    link = grafana_link(grafana_url, alert)
    if link:
        event["links"] = [{"href": link, "text": "Grafana panel"}]
    return event


class PagerDutyReceiver:
    """Sends a notification's alerts to PagerDuty: triggers for new (or repeated) alerts,
    resolves for resolved ones."""

    def __init__(
        self,
        *,
        routing_key: str,
        url: str | None = None,
        name: str = "pagerduty",
        grafana_url: str | None = None,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.url = url or DEFAULT_EVENTS_URL
        self._routing_key = routing_key
        hide_secret(routing_key, "httpx", "httpcore")
        self.grafana_url = grafana_url
        self.client = client or httpx.Client(timeout=timeout)

    def __repr__(self) -> str:  # never show the routing key
        return f"PagerDutyReceiver(name={self.name!r}, url={self.url!r})"

    def send(self, notification: Notification) -> None:
        n = notification
        new = set(n.new)
        alerts = [a for a in n.firing if n.kind == "repeat" or a.dedup_key in new]
        for alert in [*alerts, *n.resolved]:
            self._post(event_for(alert, self._routing_key, self.grafana_url))

    def _post(self, event: dict[str, Any]) -> None:
        action = event["event_action"]
        try:
            resp = self.client.post(self.url, json=event)
        except httpx.TransportError as exc:
            raise NotifyRetryable(
                f"pagerduty {action}: cannot reach {self.url} ({type(exc).__name__})"
            ) from exc
        if resp.status_code in (200, 201, 202):
            log.debug("notify.pagerduty_sent", action=action, dedup_key=event["dedup_key"])
            return
        if resp.status_code == 429 or resp.status_code >= 500:
            raise NotifyRetryable(
                f"pagerduty {action}: HTTP {resp.status_code}",
                parse_retry_after(dict(resp.headers)),
            )
        raise NotifyError(
            f"pagerduty refused the {action} event: HTTP {resp.status_code} {scrub(resp.text)[:200]}; "
            "check the routing key (an Events API v2 integration key)"
        )
