"""A generic webhook: the notification as JSON, POSTed with httpx."""

from __future__ import annotations

import httpx
import msgspec

from drifthouse.alerts.base import Notification
from drifthouse.alerts.receivers._common import parse_retry_after, plain, plain_alert
from drifthouse.errors import NotifyError, NotifyRetryable
from drifthouse.logs import hide_secret, mask_url, scrub

__all__ = ["WebhookReceiver"]


class WebhookReceiver:
    """POSTs ``{"id", "receiver", "kind", "ts", "group_key", "group_labels", "firing", "resolved",
    "new"}`` to ``url``; the ``id`` lets the other side drop a notification it already has.

    Texts from events (names, messages, group labels) arrive without control characters
    (replaced by U+FFFD, line breaks by spaces); ``dedup_key`` and ``id`` are exact."""

    def __init__(
        self,
        *,
        url: str,
        name: str = "webhook",
        headers: dict[str, str] | None = None,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.url = url
        # The URL is a secret (its path or query often is the credential): logs, errors and
        # the outbox show it as scheme://host/***.
        hide_secret(url, "httpx", "httpcore")
        self._headers = headers or {}
        for value in self._headers.values():
            hide_secret(value, "httpx", "httpcore")
        self.client = client or httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"WebhookReceiver(name={self.name!r}, url={mask_url(self.url)!r})"

    def send(self, notification: Notification) -> None:
        # JSON carries any character safely, but the other side often shows or logs these
        # texts: control characters in them are replaced (see ``plain``); keys stay exact.
        n = notification
        body = msgspec.json.encode(
            msgspec.structs.replace(
                n,
                group_labels={k: plain(v) for k, v in n.group_labels.items()},
                firing=[plain_alert(a) for a in n.firing],
                resolved=[plain_alert(a) for a in n.resolved],
            )
        )
        headers = {
            "content-type": "application/json",
            "idempotency-key": notification.id,
            **self._headers,
        }
        try:
            resp = self.client.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise NotifyRetryable(
                f"webhook {self.name}: cannot reach {mask_url(self.url)} ({type(exc).__name__})"
            ) from exc
        if resp.is_success:
            return
        if resp.status_code in (408, 429) or resp.status_code >= 500:
            raise NotifyRetryable(
                f"webhook {self.name}: HTTP {resp.status_code}",
                parse_retry_after(dict(resp.headers)),
            )
        raise NotifyError(
            f"webhook {self.name} refused the notification: HTTP {resp.status_code} {scrub(resp.text)[:200]}"
        )
