"""The contracts of alerting: a :class:`Notification` and the one-method :class:`Receiver`.

A notification is what one receiver gets for one alert group at one moment of event time:
the group's firing alerts and the alerts resolved since the group's last notification. Its ``id``
is derived from its content (group, receiver, kind, event time), so the same notification built
again after a restart or in a replay has the same id, and the outbox delivers it once.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Protocol, runtime_checkable

import msgspec

from drifthouse.rows import AlertRow

__all__ = ["MemoryReceiver", "Notification", "Receiver", "notification_id"]


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One message for one receiver about one alert group.

    ``kind`` is ``firing`` (new alerts), ``resolved`` (only resolutions), ``update`` (new alerts
    and resolutions together) or ``repeat`` (unchanged alerts re-sent after ``repeat_interval``).
    ``ts`` is the event time (epoch ms) the notification was due; ``group_labels`` holds the
    values of the route's ``group_by`` labels. ``firing`` lists every alert of the group that
    fires (as Alertmanager does), ``new`` the dedup keys among them not notified before, and
    ``resolved`` the alerts resolved since the group's last notification.
    """

    id: str
    receiver: str
    kind: str
    ts: int
    group_key: str
    group_labels: dict[str, str]
    firing: list[AlertRow]
    resolved: list[AlertRow]
    new: list[str] = []

    @property
    def alerts(self) -> list[AlertRow]:
        return [*self.firing, *self.resolved]

    @property
    def severity(self) -> str:
        """The highest severity in the group (``critical`` beats ``warning``)."""
        return "critical" if any(a.severity == "critical" for a in self.alerts) else "warning"


def notification_id(receiver: str, group_key: str, kind: str, ts: int, keys: list[str]) -> str:
    """A stable id: the same group, receiver, kind, time and alerts give the same id."""
    text = "\x1f".join([receiver, group_key, kind, str(ts), *sorted(keys)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@runtime_checkable
class Receiver(Protocol):
    """Where notifications go. ``send`` returns when the receiver has taken the notification.

    Raises :class:`~drifthouse.errors.NotifyRetryable` for failures a later retry may fix (429
    with its ``Retry-After``, 5xx, connection errors) and :class:`~drifthouse.errors.NotifyError`
    for the rest (a bad token, a rejected payload).
    """

    def send(self, notification: Notification) -> None: ...


class MemoryReceiver:
    """An in-memory receiver for tests and the demo: keeps every notification it is sent.

    ``fail_next`` makes the next sends raise the given errors, one per send.

    Example
    -------
    >>> from drifthouse.errors import NotifyRetryable
    >>> r = MemoryReceiver()
    >>> r.fail_next.append(NotifyRetryable("busy", retry_after=1.0))
    >>> n = Notification(id="1", receiver="mem", kind="firing", ts=0, group_key="g",
    ...                  group_labels={}, firing=[], resolved=[])
    >>> try:
    ...     r.send(n)
    ... except NotifyRetryable:
    ...     pass
    >>> r.send(n)
    >>> len(r.sent)
    1
    """

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.fail_next: list[Exception] = []
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        with self._lock:
            if self.fail_next:
                raise self.fail_next.pop(0)
            self.sent.append(notification)
