"""Delivery that loses nothing: an outbox (on disk or in the store) and one worker thread per
receiver.

:meth:`DeliveryWorker.enqueue` records the notification in the outbox (JSON lines, fsync'd; or
a row of table ``alert_state``) and returns at once, so the consumer never waits for Slack or PagerDuty. A thread per receiver sends
its notifications in order (a resolve never overtakes its trigger; a receiver that is down holds
up only itself), retrying 429s, 5xx and connection errors with exponential backoff that honours
``Retry-After``, up to ``max_attempts`` tries and ``max_backoff`` seconds between them. A
delivered notification is marked ``done`` in the outbox; a worker that restarts sends what is
not marked, and drops notifications whose id is already done, so each notification reaches each
receiver once (a crash between a receiver's acknowledgement and the ``done`` mark can repeat
one, which PagerDuty folds by dedup key and the Slack receiver's step index mostly prevents).

Example
-------
>>> from drifthouse.logs import configure
>>> configure(level="WARNING")  # logs go to stderr
>>> from drifthouse.alerts.base import MemoryReceiver, Notification
>>> mem = MemoryReceiver()
>>> worker = DeliveryWorker({"mem": mem})
>>> worker.start()
>>> worker.enqueue(Notification(id="n1", receiver="mem", kind="firing", ts=0, group_key="g",
...                             group_labels={}, firing=[], resolved=[]))
True
>>> worker.flush(timeout=5)
True
>>> worker.stop()
>>> [n.id for n in mem.sent]
['n1']
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from drifthouse.alerts.base import Notification, Receiver
from drifthouse.errors import NotifyError, NotifyRetryable, StoreError
from drifthouse.files import open_private, private_dir
from drifthouse.logs import get_logger, scrub
from drifthouse.sinks.alert_state import AlertStateStore

__all__ = ["DeliveryWorker", "Outbox"]

log = get_logger("alerts.delivery")

_KEEP_DONE = 20_000  # ids of delivered notifications remembered across compactions


class Outbox:
    """Notifications not yet delivered, and the ids of those delivered: in ``<dir>/outbox.jsonl``,
    in the store (``store``, table ``alert_state``), or in memory with neither.

    File lines are ``{"op": "put", "id", "n"}``, ``{"op": "done", "id"}`` and
    ``{"op": "failed", "id", "error", "retryable"}``; each append is flushed and fsync'd. Opening
    compacts the file (atomically) to the pending notifications and the recent done ids.

    In the store each notification is one row keyed by its id, whose status goes from
    ``pending`` to ``done`` (or ``failed``, given up); a retryable failure leaves it pending, for
    the next worker. A merger that moves to another host finds there what is still to send and
    what was sent. While the store is away the outbox goes on in memory (logged), and writes what
    the store missed with the next change or :meth:`sync` (called by each state save).
    """

    def __init__(
        self, directory: Path | None = None, *, store: AlertStateStore | None = None
    ) -> None:
        self.path = directory / "outbox.jsonl" if directory is not None and store is None else None
        self.store = store
        self._lock = threading.Lock()
        self._pending: dict[str, Notification] = {}
        self._done: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._fh: Any = None
        # id -> (status, body) the store has not taken yet (it was away)
        self._unsaved: dict[str, tuple[str, str]] = {}
        if store is not None:
            rows = store.outbox(_KEEP_DONE)
            self._done.update(dict.fromkeys(rows.done))
            for nid, body in rows.pending:
                if nid not in self._done:
                    self._pending[nid] = msgspec.json.decode(body, type=Notification)
            return
        if self.path is None:
            return
        private_dir(self.path.parent)
        if self.path.exists():
            self._load()
        self._compact()
        self._fh = open_private(self.path, "a", encoding="utf-8")  # held open until close()

    def _load(self) -> None:
        assert self.path is not None
        with open(self.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    # a torn last line from a crash mid-write: that put was never acknowledged
                    log.warning("outbox.torn_line", path=str(self.path), line=lineno)
                    continue
                op, nid = entry.get("op"), entry.get("id")
                if op == "put" and nid not in self._done:
                    self._pending[nid] = msgspec.convert(entry["n"], Notification)
                elif op == "done" or (op == "failed" and not entry.get("retryable", False)):
                    self._pending.pop(nid, None)
                    self._done[nid] = None

    def _compact(self) -> None:
        assert self.path is not None
        while len(self._done) > _KEEP_DONE:
            self._done.popitem(last=False)
        tmp = self.path.with_suffix(".tmp")
        with open_private(tmp, "w", encoding="utf-8") as fh:
            for nid in self._done:
                fh.write(json.dumps({"op": "done", "id": nid}) + "\n")
            for nid, note in self._pending.items():
                fh.write(
                    json.dumps({"op": "put", "id": nid, "n": msgspec.to_builtins(note)}) + "\n"
                )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def _append(self, entry: dict[str, Any]) -> None:
        if self.store is not None:
            self._store(entry)
            return
        if self._fh is None:
            return
        self._fh.write(json.dumps(entry) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def _store(self, entry: dict[str, Any]) -> None:
        op, nid = entry["op"], entry["id"]
        if op == "put":
            self._unsaved[nid] = ("pending", json.dumps(entry["n"]))
        elif op == "done":
            self._unsaved[nid] = ("done", "")
        elif not entry["retryable"]:
            self._unsaved[nid] = ("failed", entry["error"])
        # else: it stays pending in the store, and the next worker tries it again
        self._sync()

    def _sync(self) -> bool:
        if self.store is None or not self._unsaved:
            return True
        items = [(nid, status, body) for nid, (status, body) in self._unsaved.items()]
        try:
            self.store.write_many("outbox", items)
        except StoreError as exc:
            # Kept in memory, written by the next change or save: this worker neither loses
            # nor repeats a notification; a move before then may (docs/alerting.md).
            log.warning("outbox.store_failed", unsaved=len(items), error=str(exc))
            return False
        self._unsaved.clear()
        return True

    def sync(self) -> bool:
        """Write to the store what it missed while away; False while it still is."""
        with self._lock:
            return self._sync()

    def pending(self) -> list[Notification]:
        """Undelivered notifications, oldest first."""
        with self._lock:
            return list(self._pending.values())

    def known(self, nid: str) -> bool:
        with self._lock:
            return nid in self._pending or nid in self._done

    def put(self, note: Notification) -> bool:
        """Record a notification; False when its id is already pending or delivered."""
        with self._lock:
            if note.id in self._pending or note.id in self._done:
                return False
            self._append({"op": "put", "id": note.id, "n": msgspec.to_builtins(note)})
            self._pending[note.id] = note
            return True

    def done(self, nid: str) -> None:
        with self._lock:
            self._append({"op": "done", "id": nid})
            self._pending.pop(nid, None)
            self._done[nid] = None

    def failed(self, nid: str, error: str, *, retryable: bool) -> None:
        """Give up on a notification for now; a retryable one is tried again by the next worker."""
        with self._lock:
            self._append({"op": "failed", "id": nid, "error": error, "retryable": retryable})
            self._pending.pop(nid, None)
            if not retryable:
                self._done[nid] = None

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


class _Lane:
    """The queue and thread of one receiver."""

    def __init__(self, name: str, receiver: Receiver) -> None:
        self.name = name
        self.receiver = receiver
        self.queue: collections.deque[Notification] = collections.deque()
        self.cond = threading.Condition()
        self.busy = False
        self.thread: threading.Thread | None = None


class DeliveryWorker:
    """Sends notifications off the consumer's path, retrying, through an outbox.

    Parameters
    ----------
    receivers:
        Receiver name -> receiver (:func:`drifthouse.alerts.receivers.build_receivers`).
    outbox:
        Where notifications wait; in memory by default, ``Outbox(cfg.alerting.outbox_dir)`` to
        survive restarts.
    max_attempts, max_backoff:
        Tries per notification, and the longest wait between two (seconds); ``Retry-After``
        is honoured up to ``max_backoff``.
    base_backoff:
        The first wait after a failure without ``Retry-After`` (seconds); it doubles each time.
    sleep:
        How to wait between tries; by default a wait that :meth:`stop` interrupts. Tests pass
        a function that records the delays.
    owner:
        Asked before each send: is this worker still the outbox's owner? Once it says no (a
        merger that lost its shard without knowing, whose successor claimed it), every lane
        stops and leaves what it holds to the owner (logged ``notify.fenced``).
    """

    def __init__(
        self,
        receivers: Mapping[str, Receiver],
        outbox: Outbox | None = None,
        *,
        max_attempts: int = 8,
        max_backoff: float = 300.0,
        base_backoff: float = 1.0,
        sleep: Callable[[float], object] | None = None,
        owner: Callable[[], bool] | None = None,
    ) -> None:
        self.outbox = outbox or Outbox()
        self._owner = owner
        #: The owner check said another worker owns this outbox now: nothing more is sent.
        self.fenced = False
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.base_backoff = base_backoff
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._lanes = {name: _Lane(name, r) for name, r in receivers.items()}
        self.delivered = 0
        self.retries = 0
        self.gave_up = 0
        self._started = False

    @classmethod
    def from_config(cls, alerting: Any, receivers: Mapping[str, Receiver]) -> DeliveryWorker:
        """From ``drifthouse.yaml`` ``alerting`` (``outbox_dir``, ``max_attempts``, ``max_backoff`` in ms)."""
        outbox = Outbox(Path(alerting.outbox_dir)) if alerting.outbox_dir is not None else Outbox()
        return cls(
            receivers,
            outbox,
            max_attempts=alerting.max_attempts,
            max_backoff=alerting.max_backoff / 1000.0,
        )

    def start(self) -> None:
        """Start one thread per receiver and queue what the outbox still holds."""
        if self._started:
            return
        self._started = True
        self._stop.clear()
        queued = {n.id for lane in self._lanes.values() for n in lane.queue}
        for note in self.outbox.pending():
            if note.id not in queued:  # enqueued before start: already in its lane
                self._queue(note)
        for lane in self._lanes.values():
            lane.thread = threading.Thread(
                target=self._run, args=(lane,), name=f"notify-{lane.name}", daemon=True
            )
            lane.thread.start()

    def enqueue(self, notification: Notification) -> bool:
        """Record and queue a notification; False when the outbox already has its id."""
        if not self.outbox.put(notification):
            log.debug("notify.duplicate", id=notification.id, receiver=notification.receiver)
            return False
        self._queue(notification)
        return True

    __call__ = enqueue  # a DeliveryWorker is a ``deliver`` callback for the Dispatcher

    def _queue(self, note: Notification) -> None:
        lane = self._lanes.get(note.receiver)
        if lane is None:
            log.error("notify.unknown_receiver", receiver=note.receiver, id=note.id)
            self.outbox.failed(note.id, f"no receiver named {note.receiver!r}", retryable=True)
            return
        with lane.cond:
            lane.queue.append(note)
            lane.cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queue is empty; False on timeout (at once when fenced)."""
        end = None if timeout is None else time.monotonic() + timeout
        for lane in self._lanes.values():
            with lane.cond:
                while (lane.queue or lane.busy) and not self.fenced:
                    left = None if end is None else end - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    lane.cond.wait(0.05 if left is None else min(left, 0.05))
        return not self.fenced

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads; what is not delivered stays in the outbox for the next start.

        A wait between retries is cut short; a send in flight is not: its answer decides
        whether the outbox marks it done, and a worker that stopped before the mark would
        leave it to be sent again by the next one (the merger of a shard that moves in order
        must not page twice). Past ``timeout`` the wait is logged and goes on: the receivers'
        own timeouts bound it."""
        self._stop.set()
        for lane in self._lanes.values():
            with lane.cond:
                lane.cond.notify_all()
        for lane in self._lanes.values():
            if lane.thread is not None:
                lane.thread.join(timeout)
                if lane.thread.is_alive():
                    log.warning("notify.stop_waits_for_send", receiver=lane.name)
                    lane.thread.join()
                lane.thread = None
        self._started = False
        self.outbox.close()

    def _run(self, lane: _Lane) -> None:
        while not self._stop.is_set():
            with lane.cond:
                while not lane.queue and not self._stop.is_set():
                    lane.cond.wait(0.5)
                if self._stop.is_set():
                    return
                note = lane.queue[0]
                lane.busy = True
            if not self._still_owner(lane, note):
                with lane.cond:
                    lane.busy = False
                    lane.cond.notify_all()
                return
            try:
                delivered = self._deliver(lane, note)
            finally:
                with lane.cond:
                    if delivered is not None:
                        lane.queue.popleft()
                    lane.busy = False
                    lane.cond.notify_all()
            if delivered is None:
                return  # stopping: the notification stays in the outbox

    def _still_owner(self, lane: _Lane, note: Notification) -> bool:
        if self._owner is None or (not self.fenced and self._owner()):
            return True
        if not self.fenced:
            log.warning("notify.fenced", receiver=lane.name, id=note.id)
        self.fenced = True
        self._stop.set()  # every lane: what they hold is the owner's to send
        return False

    def _deliver(self, lane: _Lane, note: Notification) -> bool | None:
        """True when delivered, False when given up, None when interrupted by :meth:`stop`."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                lane.receiver.send(note)
            except NotifyRetryable as exc:
                if attempt == self.max_attempts:
                    self.gave_up += 1
                    log.error(
                        "notify.gave_up",
                        receiver=lane.name,
                        id=note.id,
                        attempts=attempt,
                        error=scrub(str(exc)),
                    )
                    self.outbox.failed(note.id, scrub(str(exc)), retryable=True)
                    return False
                delay = self.base_backoff * 2 ** (attempt - 1)
                if exc.retry_after is not None:
                    delay = exc.retry_after
                delay = min(delay, self.max_backoff)
                self.retries += 1
                log.warning(
                    "notify.retry",
                    receiver=lane.name,
                    id=note.id,
                    attempt=attempt,
                    delay_s=delay,
                    error=scrub(str(exc)),
                )
                self._sleep(delay)
                if self._stop.is_set():
                    return None
                continue
            except NotifyError as exc:
                self.gave_up += 1
                log.error("notify.refused", receiver=lane.name, id=note.id, error=scrub(str(exc)))
                self.outbox.failed(note.id, scrub(str(exc)), retryable=False)
                return False
            except Exception as exc:  # a bug in a receiver must not kill its lane
                self.gave_up += 1
                log.exception("notify.crashed", receiver=lane.name, id=note.id)
                self.outbox.failed(note.id, repr(exc), retryable=False)
                return False
            self.outbox.done(note.id)
            self.delivered += 1
            log.info(
                "notify.sent", receiver=lane.name, id=note.id, kind=note.kind, attempts=attempt
            )
            return True
        return False
