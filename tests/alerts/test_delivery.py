"""The delivery worker and its outbox, against the fake APIs (real clients, real sockets)."""

from __future__ import annotations

import threading
from pathlib import Path

from drifthouse.alerts.base import MemoryReceiver, Notification
from drifthouse.alerts.delivery import DeliveryWorker, Outbox
from drifthouse.alerts.receivers.pagerduty import PagerDutyReceiver
from drifthouse.alerts.receivers.slack import SlackReceiver
from drifthouse.config import AlertingConfig
from drifthouse.errors import NotifyError, NotifyRetryable
from tests.alerts.conftest import MIN, arow
from tests.fakes import FakeApi


def pd_note(i: int, status: str = "firing", receiver: str = "pagerduty") -> Notification:
    alert = arow(i * MIN, status=status, key=f"alert-{i}")
    firing, resolved = ([alert], []) if status == "firing" else ([], [alert])
    return Notification(
        id=f"{receiver}-{i}-{status}",
        receiver=receiver,
        kind=status,
        ts=i * MIN,
        group_key=f"g{i}",
        group_labels={},
        firing=firing,
        resolved=resolved,
        new=[alert.dedup_key] if firing else [],
    )


class Sleeps:
    """Records the waits the worker asks for instead of waiting; ``hook`` runs on the n-th wait."""

    def __init__(self, at: int = -1, hook: object = None) -> None:
        self.delays: list[float] = []
        self.at, self.hook = at, hook
        self.lock = threading.Lock()

    def __call__(self, delay: float) -> None:
        with self.lock:
            self.delays.append(delay)
            if len(self.delays) == self.at and callable(self.hook):
                self.hook()


def receivers(api: FakeApi) -> dict[str, object]:
    return {
        "pagerduty": PagerDutyReceiver(routing_key="key", url=f"{api.url}/v2/enqueue"),
        "slack": SlackReceiver(token="xoxb-1", channel="#c", base_url=f"{api.url}/api/"),
    }


def test_429_retry_after_is_honoured(api: FakeApi) -> None:
    api.fail("/v2/enqueue", 429, retry_after=3, times=2)
    sleeps = Sleeps()
    worker = DeliveryWorker(receivers(api), sleep=sleeps, base_backoff=0.5)  # type: ignore[arg-type]
    worker.start()
    worker.enqueue(pd_note(1))
    assert worker.flush(timeout=10)
    worker.stop()
    assert sleeps.delays == [3.0, 3.0]
    assert [r.status for r in api.requests] == [429, 429, 202]
    assert len(api.pd_events()) == 1


def test_backoff_doubles_and_is_capped(api: FakeApi) -> None:
    api.fail("/api/chat.postMessage", 500, times=5)
    sleeps = Sleeps()
    worker = DeliveryWorker(receivers(api), sleep=sleeps, base_backoff=1.0, max_backoff=5.0)  # type: ignore[arg-type]
    worker.start()
    worker.enqueue(pd_note(1, receiver="slack"))
    assert worker.flush(timeout=10)
    worker.stop()
    assert sleeps.delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(api.slack_calls("chat.postMessage")) == 1


def test_receiver_down_for_a_while_then_back_every_notification_once(api: FakeApi) -> None:
    api.down()
    sleeps = Sleeps(at=4, hook=api.up)  # the fourth wait (of either lane) brings the service back
    worker = DeliveryWorker(receivers(api), sleep=sleeps, max_attempts=20)  # type: ignore[arg-type]
    worker.start()
    for i in range(10):
        worker.enqueue(pd_note(i))
        worker.enqueue(pd_note(i, receiver="slack"))
    for i in range(10):
        worker.enqueue(pd_note(i, "resolved"))
    assert worker.flush(timeout=20)
    worker.stop()
    events = api.pd_events()
    assert sorted((e["dedup_key"], e["event_action"]) for e in events) == sorted(
        [(f"alert-{i}", "trigger") for i in range(10)]
        + [(f"alert-{i}", "resolve") for i in range(10)]
    )
    # order is kept per receiver: every resolve after its trigger
    for i in range(10):
        actions = [e["event_action"] for e in events if e["dedup_key"] == f"alert-{i}"]
        assert actions == ["trigger", "resolve"]
    assert len(api.slack_calls("chat.postMessage")) == 10
    assert worker.delivered == 30
    assert worker.gave_up == 0
    assert len(sleeps.delays) >= 4


def test_one_receiver_down_does_not_hold_up_another(api: FakeApi) -> None:
    mem = MemoryReceiver()
    gate = threading.Event()
    worker = DeliveryWorker(
        {"pagerduty": receivers(api)["pagerduty"], "mem": mem},  # type: ignore[dict-item]
        sleep=lambda _s: gate.wait(5),
    )
    api.down()
    worker.start()
    worker.enqueue(pd_note(1))
    worker.enqueue(pd_note(1, receiver="mem"))
    for _ in range(200):
        if mem.sent:
            break
        threading.Event().wait(0.01)
    assert [n.id for n in mem.sent] == ["mem-1-firing"]
    api.up()
    gate.set()
    assert worker.flush(timeout=10)
    worker.stop()
    assert len(api.pd_events()) == 1


def test_outbox_survives_a_restart(api: FakeApi, tmp_path: Path) -> None:
    api.down()
    first = DeliveryWorker(receivers(api), Outbox(tmp_path), sleep=lambda _s: None, max_attempts=2)  # type: ignore[arg-type]
    first.start()
    for i in range(3):
        first.enqueue(pd_note(i))
    assert first.flush(timeout=10)  # each gave up after 2 tries, kept as retryable
    first.stop()
    assert first.gave_up == 3
    api.up()
    second = DeliveryWorker(receivers(api), Outbox(tmp_path), sleep=lambda _s: None)  # type: ignore[arg-type]
    second.start()
    assert second.flush(timeout=10)
    assert not second.enqueue(pd_note(0))  # already delivered: the same id is dropped
    second.stop()
    assert sorted(e["dedup_key"] for e in api.pd_events()) == ["alert-0", "alert-1", "alert-2"]
    third = Outbox(tmp_path)
    assert third.pending() == []
    assert third.known("pagerduty-2-firing")
    third.close()


def test_stop_mid_backoff_keeps_the_notification(api: FakeApi, tmp_path: Path) -> None:
    api.down()
    worker = DeliveryWorker(receivers(api), Outbox(tmp_path))  # type: ignore[arg-type]
    worker.start()
    worker.enqueue(pd_note(1))
    threading.Event().wait(0.2)
    worker.stop()  # interrupts the 1s backoff at once
    api.up()
    assert [n.id for n in Outbox(tmp_path).pending()] == ["pagerduty-1-firing"]
    again = DeliveryWorker.from_config(AlertingConfig(outbox_dir=tmp_path), receivers(api))  # type: ignore[arg-type]
    again.start()
    assert again.flush(timeout=10)
    again.stop()
    assert len(api.pd_events()) == 1


def test_refused_notifications_are_not_retried(tmp_path: Path) -> None:
    mem = MemoryReceiver()
    mem.fail_next = [NotifyError("bad token")]
    worker = DeliveryWorker({"mem": mem}, Outbox(tmp_path), sleep=lambda _s: None)
    worker.start()
    worker.enqueue(pd_note(1, receiver="mem"))
    worker.enqueue(pd_note(2, receiver="mem"))
    assert worker.flush(timeout=5)
    worker.stop()
    assert [n.id for n in mem.sent] == ["mem-2-firing"]
    assert worker.gave_up == 1
    assert Outbox(tmp_path).pending() == []


def test_torn_outbox_line_is_skipped(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put(pd_note(1, receiver="mem"))
    box.close()
    with open(tmp_path / "outbox.jsonl", "a") as fh:
        fh.write('{"op": "put", "id": "torn", "n": {')  # a crash mid-write
    assert [n.id for n in Outbox(tmp_path).pending()] == ["mem-1-firing"]


def test_retryable_error_from_memory_receiver() -> None:
    mem = MemoryReceiver()
    mem.fail_next = [NotifyRetryable("busy", retry_after=0.25)]
    sleeps = Sleeps()
    worker = DeliveryWorker({"mem": mem}, sleep=sleeps)
    worker.start()
    worker.enqueue(pd_note(1, receiver="mem"))
    assert worker.flush(timeout=5)
    worker.stop()
    assert sleeps.delays == [0.25]
    assert len(mem.sent) == 1


def test_enqueue_before_start_sends_once(tmp_path: Path) -> None:
    mem = MemoryReceiver()
    worker = DeliveryWorker({"mem": mem}, Outbox(tmp_path))
    worker.enqueue(pd_note(1, receiver="mem"))
    worker.start()
    assert worker.flush(timeout=5)
    worker.stop()
    assert [n.id for n in mem.sent] == ["mem-1-firing"]
