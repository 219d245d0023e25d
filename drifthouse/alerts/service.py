"""Alerting wired together: rules engine -> dispatcher (routes, groups, mutes) -> delivery worker.

The pipeline calls :meth:`Alerting.process` with the metric rows of the windows a watermark
closed, stores the returned alert rows (table ``alerts``), and calls :meth:`Alerting.save_state`
when it commits the offsets those rows cover; a restarted worker loads that state and neither
pages again nor forgets an alert that is firing. With a ``state_store`` (the live merger's) the
state, the outbox and the Slack message index are in the store (table ``alert_state``), so this
holds for a merger that restarts on another host too; without one they are in ``state_dir``
(docs/alerting.md, "Where alerting's state lives").

Example
-------
>>> from drifthouse.logs import configure
>>> configure(level="WARNING")  # logs go to stderr
>>> from drifthouse.config import Config
>>> from drifthouse.rows import MetricRow
>>> from drifthouse.alerts.base import MemoryReceiver
>>> cfg = Config.model_validate({
...     "rules": [{"name": "errors", "metric": "error_rate_5xx", "when": "value > 0.05", "severity": "critical"}],
...     "routes": [{"match": {"severity": "critical"}, "receivers": ["mem"], "group_wait": 0}],
...     "receivers": {"mem": {"type": "console"}}})
>>> mem = MemoryReceiver()
>>> alerting = Alerting(cfg, receivers={"mem": mem})
>>> row = MetricRow(window_start=0, window_end=60_000, window="1m", model="m", model_version="1",
...                 feature="", segment="", metric="error_rate_5xx", value=0.5, n=10, run_id="live")
>>> [(a.status, a.receivers) for a in alerting.process([row], watermark=60_000)]
[('firing', ['mem'])]
>>> alerting.close()
>>> [n.kind for n in mem.sent]
['firing']
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from drifthouse.alerts.base import Notification, Receiver
from drifthouse.alerts.delivery import DeliveryWorker, Outbox
from drifthouse.alerts.routing import Dispatcher
from drifthouse.alerts.rules import Baselines, RuleEngine
from drifthouse.alerts.silences import SilenceStore
from drifthouse.config import Config
from drifthouse.errors import StoreError
from drifthouse.files import open_private, private_dir
from drifthouse.logs import get_logger
from drifthouse.rows import AlertRow, MetricRow
from drifthouse.sinks.alert_state import AlertStateStore

__all__ = ["Alerting"]

STATE_FILE = "alert-state.json"

log = get_logger("alerts.service")


class Alerting:
    """Rules, routing and delivery for one worker.

    Parameters
    ----------
    config:
        The whole configuration (``rules``, ``routes``, ``inhibit``, ``receivers``, ``alerting``).
    baselines:
        ``(model, model_version, feature, metric) -> float | None`` from the reference profiles.
    receivers:
        Receivers by name; built from ``config.receivers`` when not given.
    silences:
        A silence store (e.g. :class:`~drifthouse.alerts.silences.ClickHouseSilenceStore`).
    notify:
        False for a replay without ``--notify``: alerts are evaluated and routed (the
        ``receivers`` column is filled) but nothing is sent.
    state_dir:
        Where :meth:`save_state` keeps engine and dispatcher state and the outbox lives; defaults
        to ``config.alerting.outbox_dir``. The state found there is loaded at construction
        unless ``resume`` is False. A replay should use a folder of its own (or ``resume=False``
        and ``notify=False``), so that it neither starts from nor overwrites the live state.
    state_store:
        Keep the state, the outbox and the Slack message index in the store instead (table
        ``alert_state``), under ``config.kafka.group`` and ``shard``: a merger that moves to
        another host loads them there and neither pages twice nor misses a resolve. The store's
        client is this object's own, closed by :meth:`close`.
    shard:
        The merge shard whose alerts these are (``""``: the one merger of the group).
    start:
        Start the delivery threads at once (else call ``worker.start()``).
    clock:
        Wall-clock seconds (``time.time``), for the wall-clock limit of repeats.

    Notes
    -----
    Repeats of a still-firing group fall due by event time (``repeat_interval``), which a
    backfill through Kafka runs hours a second. A repeat is therefore also held back until
    ``alerting.repeat_wall_clock`` (default 1h) of wall-clock time has passed since the last
    notification of its group to its receiver; held repeats are counted in ``repeats_held``.
    """

    def __init__(
        self,
        config: Config,
        *,
        baselines: Baselines | None = None,
        receivers: Mapping[str, Receiver] | None = None,
        silences: SilenceStore | None = None,
        notify: bool = True,
        state_dir: Path | None = None,
        resume: bool = True,
        start: bool = True,
        clock: Callable[[], float] = time.time,
        state_store: AlertStateStore | None = None,
        shard: str = "",
    ) -> None:
        self._clock = clock
        self._repeat_wall_s = config.alerting.repeat_wall_clock / 1000.0
        # (receiver, group key) -> wall-clock second of its last notification handed on.
        self._last_wall: dict[tuple[str, str], float] = {}
        self.repeats_held = 0
        self.state_dir = state_dir if state_dir is not None else config.alerting.outbox_dir
        if self.state_dir is not None and not self.state_dir.is_absolute():
            self.state_dir = config.base_dir / self.state_dir
        self.store = (
            state_store.scoped(config.kafka.group, shard) if state_store is not None else None
        )
        self.engine = RuleEngine(config.rules, baselines)
        self.worker: DeliveryWorker | None = None
        if notify:
            if receivers is None:
                # Imported only when something is sent: the receivers' clients (Slack's SDK,
                # httpx) are a replay's largest import that it does not use without --notify.
                from drifthouse.alerts.receivers import build_receivers

                receivers = build_receivers(
                    config.receivers,
                    state_dir=self.state_dir,
                    kafka_bootstrap=config.kafka.bootstrap,
                    state_store=self.store,
                )
            self.worker = DeliveryWorker(
                receivers,
                Outbox(self.state_dir, store=self.store),
                max_attempts=config.alerting.max_attempts,
                max_backoff=config.alerting.max_backoff / 1000.0,
            )
        self.dispatcher = Dispatcher(
            config.routes,
            config.inhibit,
            deliver=self._deliver if notify else None,
            silences=silences,
            rule_labels=self.engine.rule_labels,
        )
        #: The state as the store last took it.
        self._stored: str | None = None
        if resume:
            saved = self._read_state()
            if saved is not None:
                self.load_state(json.loads(saved))
        if start and self.worker is not None:
            self.worker.start()

    def _deliver(self, note: Notification) -> None:
        if self.worker is None:
            return
        key = (note.receiver, note.group_key)
        now = self._clock()
        last = self._last_wall.get(key)
        if note.kind == "repeat" and last is not None and now - last < self._repeat_wall_s:
            self.repeats_held += 1
            log.debug("notify.repeat_held", receiver=note.receiver, group=note.group_key)
            return
        self._last_wall[key] = now
        self.worker.enqueue(note)

    def process(self, rows: Iterable[MetricRow], watermark: int | None = None) -> list[AlertRow]:
        """Evaluate rows, route the alert state changes, send what falls due by ``watermark``
        (default: the last window end seen). Returns the alert rows to store."""
        rows = list(rows)
        alerts = self.dispatcher.submit(self.engine.process(rows))
        if watermark is None and rows:
            watermark = max(r.window_end for r in rows)
        if watermark is not None:
            self.dispatcher.advance(watermark)
        return alerts

    def advance(self, watermark: int) -> list[Notification]:
        """Move event time on without new rows (group waits and repeats fall due)."""
        return self.dispatcher.advance(watermark)

    def drain(self) -> list[Notification]:
        """End of a bounded source: send what the groups are waiting for."""
        return self.dispatcher.drain()

    def dump_state(self) -> dict[str, Any]:
        return {
            "engine": self.engine.dump_state(),
            "dispatcher": self.dispatcher.dump_state(),
            "last_wall": [[r, g, t] for (r, g), t in self._last_wall.items()],
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.engine.load_state(state["engine"])
        self.dispatcher.load_state(state["dispatcher"])
        self._last_wall = {(r, g): float(t) for r, g, t in state.get("last_wall", [])}

    def _read_state(self) -> str | None:
        if self.store is not None:
            return self.store.read("state", "")
        if self.state_dir is not None and (self.state_dir / STATE_FILE).exists():
            return (self.state_dir / STATE_FILE).read_text()
        return None

    def save_state(self) -> None:
        """Write the state to the store, or atomically to ``<state_dir>/alert-state.json``
        (call it after the rows are stored, before the offsets they cover are committed).

        While the store is away the state is kept in memory (logged) and the next save
        writes it."""
        if self.store is not None:
            if self.worker is not None:
                self.worker.outbox.sync()
            text = json.dumps(self.dump_state())
            if text == self._stored:
                return  # most batches close no window: no insert (and no part) for them
            try:
                self.store.write("state", "", text)
            except StoreError as exc:
                log.warning("alerts.state_store_failed", error=str(exc))
            else:
                self._stored = text
            return
        if self.state_dir is None:
            return
        private_dir(self.state_dir)
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        with open_private(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.dump_state(), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued notification is delivered (or given up)."""
        return True if self.worker is None else self.worker.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what can be delivered within ``timeout``, save state, stop the worker."""
        if self.worker is not None:
            self.worker.flush(timeout)
            self.worker.stop()
        self.save_state()
        if self.store is not None:
            self.store.close()
