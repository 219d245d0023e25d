"""Routing, grouping, inhibition and silences: alerts in, notifications out, in event time.

Alertmanager's model, simplified:

- Routes are tried in order; the first whose ``match`` labels all match (exact or glob) takes
  the alert, and later routes are tried too only while the matching routes say ``continue``.
- Each route groups its alerts by ``group_by`` labels. A new group waits ``group_wait`` before
  its first notification, then batches changes at most every ``group_interval``, and re-sends
  unchanged firing alerts every ``repeat_interval``.
- A firing ``source`` alert of an inhibition mutes matching ``target`` alerts that have equal
  ``equal`` labels; a silence mutes the alerts its matchers match. Muted alerts are logged
  (``alert.muted``) and kept in :attr:`Dispatcher.muted`, never sent.

Every timer runs on event time, the alerts' timestamps: :meth:`Dispatcher.advance` moves the
clock to a watermark and handles what fell due on the way, each at the instant it fell due, with
only the alerts stamped at or before that instant. A replay therefore sends the same
notifications, at the same event times, as the live run, however often ``advance`` is called.

Example
-------
>>> from drifthouse.config import RouteConfig
>>> from drifthouse.rows import AlertRow
>>> sent = []
>>> d = Dispatcher([RouteConfig(match={"severity": "critical"}, receivers=["pd"], group_wait=0)],
...                deliver=sent.append)
>>> a = AlertRow(ts=1000, rule="errors", severity="critical", status="firing", model="m",
...              model_version="1", feature="", segment="", metric="error_rate_5xx", value=0.2,
...              threshold=0.05, window_start=0, window_end=1000, message="", receivers=[],
...              dedup_key="k", run_id="live")
>>> [x.receivers for x in d.submit([a])]
[['pd']]
>>> [(n.receiver, n.kind, n.ts) for n in d.advance(1000)]
[('pd', 'firing', 1000)]
"""

from __future__ import annotations

import bisect
import heapq
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from drifthouse.alerts.base import Notification, notification_id
from drifthouse.alerts.rules import alert_labels
from drifthouse.alerts.silences import Silence, SilenceStore
from drifthouse.config import InhibitConfig, RouteConfig
from drifthouse.config.alert_checks import labels_match
from drifthouse.errors import ConfigError
from drifthouse.logs import get_logger
from drifthouse.rows import AlertRow

__all__ = ["Dispatcher", "Muted", "labels_match"]

log = get_logger("alerts.routing")


class Muted(msgspec.Struct, frozen=True, kw_only=True):
    """A firing alert a receiver did not hear of: ``reason`` is ``inhibited`` or ``silenced``."""

    ts: int
    dedup_key: str
    rule: str
    model: str
    reason: str
    by: str  # the inhibiting alert's dedup_key, or the silence id
    alert: AlertRow


class _Group(msgspec.Struct, kw_only=True):
    route: int
    key: str
    order: int  # creation order: breaks ties between groups due at the same instant
    labels: dict[str, str]
    alerts: dict[str, AlertRow] = {}  # dedup_key -> latest state
    notified: list[str] = []  # dedup keys whose firing was sent
    created: int = 0
    dirty_since: int | None = None
    last_flush: int | None = None
    last_notify: int | None = None


class _Pending(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    alert: AlertRow


class _State(msgspec.Struct, kw_only=True):
    version: int = 1
    clock: int = -(2**62)
    seq: int = 0
    groups_made: int = 0
    pending: list[_Pending] = []
    groups: list[_Group] = []
    active: dict[str, dict[str, str]] = {}  # firing dedup_key -> labels
    muted_seen: list[str] = []


class Dispatcher:
    """Routes alerts to receivers' notifications on event time.

    Parameters
    ----------
    routes, inhibit:
        ``drifthouse.yaml`` ``routes`` and ``inhibit``.
    deliver:
        Called with each notification when it falls due, e.g. ``DeliveryWorker.enqueue``.
    silences:
        A silence store; none by default.
    rule_labels:
        ``rule name -> labels`` of the rule (``RuleEngine.rule_labels``), matched like built-in labels.

    Call :meth:`submit` with the alerts of the windows a watermark closed, then
    :meth:`advance` with that watermark; at the end of a bounded source call :meth:`drain`.
    """

    def __init__(
        self,
        routes: Sequence[RouteConfig],
        inhibit: Sequence[InhibitConfig] = (),
        *,
        deliver: Callable[[Notification], None] | None = None,
        silences: SilenceStore | None = None,
        rule_labels: Callable[[str], Mapping[str, str]] | None = None,
    ) -> None:
        self.routes = list(routes)
        self.inhibit = list(inhibit)
        self.deliver = deliver
        self.silences = silences
        self.rule_labels = rule_labels or (lambda _name: {})
        self.muted: list[Muted] = []
        self._s = _State()
        self._groups: dict[str, _Group] = {}
        # Next due time per group, kept in a heap with lazy invalidation: an entry is live
        # while it equals _due_of[key]. A group's due time depends only on its own state.
        self._heap: list[tuple[int, int, int, str]] = []  # (due, group order, version, key)
        self._due_of: dict[str, int] = {}  # key -> version of its live heap entry
        self._version = 0
        self._inhibit_index: list[dict[tuple[str, ...], list[str]]] | None = None
        self._muted_seen: set[str] = set()

    # ---- routing --------------------------------------------------------------------------------

    def labels(self, alert: AlertRow) -> dict[str, str]:
        return alert_labels(alert, self.rule_labels(alert.rule))

    def matching_routes(self, labels: Mapping[str, str]) -> list[int]:
        """Indexes of the routes that take an alert with these labels."""
        out = []
        for i, route in enumerate(self.routes):
            if labels_match(route.match, labels):
                out.append(i)
                if not route.continue_:
                    break
        return out

    def receivers_for(self, alert: AlertRow) -> list[str]:
        """The receivers an alert is routed to (the ``receivers`` column of table ``alerts``)."""
        names: list[str] = []
        for i in self.matching_routes(self.labels(alert)):
            names.extend(r for r in self.routes[i].receivers if r not in names)
        return names

    def submit(self, alerts: Iterable[AlertRow]) -> list[AlertRow]:
        """Queue alert state changes; return them with ``receivers`` filled in, to be stored."""
        out = []
        for alert in alerts:
            routed = msgspec.structs.replace(alert, receivers=self.receivers_for(alert))
            if not routed.receivers:
                log.warning(
                    "alert.unrouted", rule=alert.rule, model=alert.model, status=alert.status
                )
            self._s.seq += 1
            item = _Pending(seq=self._s.seq, alert=routed)
            bisect.insort(self._s.pending, item, key=lambda p: (p.alert.ts, p.seq))
            out.append(routed)
        return out

    # ---- the event-time clock -------------------------------------------------------------------

    def advance(self, now_ms: int) -> list[Notification]:
        """Move the clock to ``now_ms`` (a watermark); return (and deliver) what fell due."""
        sent: list[Notification] = []
        pending = self._s.pending
        heap = self._heap
        while True:
            next_alert = pending[0].alert.ts if pending and pending[0].alert.ts <= now_ms else None
            while heap and self._due_of.get(heap[0][3]) != heap[0][2]:
                heapq.heappop(heap)  # stale: the group changed or is gone
            due = heap[0][0] if heap and heap[0][0] <= now_ms else None
            if next_alert is not None and (due is None or next_alert <= due):
                self._apply(pending.pop(0).alert)
            elif due is not None:
                key = heapq.heappop(heap)[3]
                del self._due_of[key]
                self._s.clock = max(self._s.clock, due)
                sent.extend(self._flush(self._groups[key], self._s.clock))
            else:
                break
        self._s.clock = max(self._s.clock, now_ms)
        return sent

    def drain(self) -> list[Notification]:
        """End of a bounded source: send what the last alerts' groups are waiting for."""
        if not self._s.pending and not self._groups:
            return []
        last = max([p.alert.ts for p in self._s.pending] + [self._s.clock])
        wait = max([r.group_wait for r in self.routes] + [0])
        return self.advance(last + wait)

    def _schedule(self, group: _Group) -> None:
        due = self._due(group)
        if due is None:
            self._due_of.pop(group.key, None)
            return
        self._version += 1
        self._due_of[group.key] = self._version
        heapq.heappush(self._heap, (due, group.order, self._version, group.key))

    def _due(self, group: _Group) -> int | None:
        route = self.routes[group.route]
        if group.dirty_since is not None:
            if group.last_flush is None:
                return group.created + route.group_wait
            return max(group.dirty_since, group.last_flush + route.group_interval)
        # After a flush the next look is strictly later, even with zero intervals.
        firing = [k for k, a in group.alerts.items() if a.status == "firing"]
        if not firing:
            return None
        if any(k not in group.notified for k in firing) and group.last_flush is not None:
            # muted alerts: look again at the next interval in case the mute has ended
            return group.last_flush + max(route.group_interval, 1)
        if group.last_notify is not None:
            return group.last_notify + max(route.repeat_interval, 1)
        return None

    def _apply(self, alert: AlertRow) -> None:
        self._s.clock = max(self._s.clock, alert.ts)
        labels = self.labels(alert)
        self._inhibit_index = None
        if alert.status == "firing":
            self._s.active[alert.dedup_key] = labels
        else:
            self._s.active.pop(alert.dedup_key, None)
            prefix = f"{alert.dedup_key}:"
            self._muted_seen = {m for m in self._muted_seen if not m.startswith(prefix)}
        for i in self.matching_routes(labels):
            route = self.routes[i]
            group_labels = {k: labels.get(k, "") for k in route.group_by}
            key = f"{i}:{json.dumps(group_labels, sort_keys=True)}"
            group = self._groups.get(key)
            if group is None:
                if alert.status != "firing":
                    continue  # a resolution for a group that is gone: nothing was notified
                self._s.groups_made += 1
                group = self._groups[key] = _Group(
                    route=i,
                    key=key,
                    order=self._s.groups_made,
                    labels=group_labels,
                    created=alert.ts,
                )
            group.alerts[alert.dedup_key] = alert
            if group.dirty_since is None:
                group.dirty_since = alert.ts
            self._schedule(group)

    def _inhibitors(self) -> list[dict[tuple[str, ...], list[str]]]:
        """Per inhibition: firing source alerts by their ``equal`` label values (cached until
        the set of firing alerts changes)."""
        if self._inhibit_index is None:
            index: list[dict[tuple[str, ...], list[str]]] = []
            for rule in self.inhibit:
                by_equal: dict[tuple[str, ...], list[str]] = {}
                for key, source in self._s.active.items():
                    if labels_match(rule.source, source):
                        by_equal.setdefault(
                            tuple(source.get(e, "") for e in rule.equal), []
                        ).append(key)
                index.append(by_equal)
            self._inhibit_index = index
        return self._inhibit_index

    def _muted_by(
        self, alert: AlertRow, labels: Mapping[str, str], silences: Sequence[Silence]
    ) -> tuple[str, str] | None:
        for rule, sources in zip(self.inhibit, self._inhibitors(), strict=True):
            if not sources or not labels_match(rule.target, labels):
                continue
            for key in sources.get(tuple(labels.get(e, "") for e in rule.equal), ()):
                if key != alert.dedup_key:
                    return "inhibited", key
        for silence in silences:
            if silence.matches(labels):
                return "silenced", silence.id
        return None

    def _flush(self, group: _Group, ts: int) -> list[Notification]:
        route = self.routes[group.route]
        repeat_due = group.dirty_since is None
        visible = self._unmuted(group, ts)
        notified = set(group.notified)
        resolved = [
            a for a in group.alerts.values() if a.status == "resolved" and a.dedup_key in notified
        ]
        new = [a.dedup_key for a in visible if a.dedup_key not in notified]
        repeat = (
            repeat_due
            and group.last_notify is not None
            and ts >= group.last_notify + route.repeat_interval
        )
        if new and resolved:
            kind = "update"
        elif new:
            kind = "firing"
        elif resolved:
            kind = "resolved"
        elif visible and repeat:
            kind = "repeat"
        else:
            kind = ""
        out: list[Notification] = []
        if kind:
            out = self._notify(group, route, kind, ts, visible, resolved, new)
            group.last_notify = ts
        elif repeat:
            group.last_notify = ts  # everything muted: skip this repeat
        group.notified = sorted((notified | set(new)) - {a.dedup_key for a in resolved})
        self._settle(group, ts)
        return out

    def _unmuted(self, group: _Group, ts: int) -> list[AlertRow]:
        """The group's firing alerts no inhibition or silence mutes at ``ts``; the muted ones are
        recorded in :attr:`muted` and logged, once per alert state and muter."""
        visible: list[AlertRow] = []
        firing = [a for a in group.alerts.values() if a.status == "firing"]
        silences = self.silences.active(ts) if self.silences is not None and firing else []
        for alert in firing:
            labels = self.labels(alert)
            muted = self._muted_by(alert, labels, silences)
            if muted is None:
                visible.append(alert)
                continue
            reason, by = muted
            mark = f"{alert.dedup_key}:{alert.ts}:{by}"
            if mark in self._muted_seen:
                continue
            self._muted_seen.add(mark)
            self.muted.append(
                Muted(
                    ts=ts,
                    dedup_key=alert.dedup_key,
                    rule=alert.rule,
                    model=alert.model,
                    reason=reason,
                    by=by,
                    alert=alert,
                )
            )
            log.info(
                "alert.muted",
                rule=alert.rule,
                model=alert.model,
                feature=alert.feature,
                severity=alert.severity,
                reason=reason,
                by=by,
                ts=ts,
            )
        return visible

    def _notify(
        self,
        group: _Group,
        route: RouteConfig,
        kind: str,
        ts: int,
        visible: list[AlertRow],
        resolved: list[AlertRow],
        new: list[str],
    ) -> list[Notification]:
        """One notification of ``kind`` per receiver of the route, delivered as made."""
        out: list[Notification] = []
        keys = [a.dedup_key for a in visible] + [a.dedup_key + ":resolved" for a in resolved]
        for receiver in route.receivers:
            note = Notification(
                id=notification_id(receiver, group.key, kind, ts, keys),
                receiver=receiver,
                kind=kind,
                ts=ts,
                group_key=group.key,
                group_labels=dict(group.labels),
                firing=list(visible),
                resolved=resolved,
                new=new,
            )
            out.append(note)
            if self.deliver is not None:
                self.deliver(note)
        return out

    def _settle(self, group: _Group, ts: int) -> None:
        """After a flush: forget resolved alerts, drop an empty group, else schedule its next look."""
        for key in [k for k, a in group.alerts.items() if a.status == "resolved"]:
            del group.alerts[key]
            if key in group.notified:
                group.notified.remove(key)
        group.dirty_since = None
        group.last_flush = ts
        if not group.alerts:
            del self._groups[group.key]
            self._due_of.pop(group.key, None)
        else:
            self._schedule(group)

    # ---- persistence ----------------------------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        """Groups, pending alerts and the clock as JSON-ready builtins."""
        self._s.groups = list(self._groups.values())
        self._s.muted_seen = sorted(self._muted_seen)
        out: dict[str, Any] = msgspec.to_builtins(self._s)
        self._s.groups = []
        return out

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`dump_state`'s output (routes must be the same list as when dumped)."""
        if state.get("version") != 1:
            raise ConfigError(
                f"unknown dispatcher state version {state.get('version')!r} (expected 1)"
            )
        s = msgspec.convert(state, _State)
        self._groups = {g.key: g for g in s.groups if g.route < len(self.routes)}
        self._heap, self._due_of = [], {}
        self._inhibit_index = None
        for group in self._groups.values():
            self._schedule(group)
        self._muted_seen = set(s.muted_seen)
        s.groups = []
        self._s = s
