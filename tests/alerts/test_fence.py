"""A notification is handed to delivery only together with the alert state that raised it.

A merger that stops (killed, or moved to another host) is followed by one that loads the last
state saved and re-reads the partials after it. The windows it re-reads may close in another
order than they did the first time (the re-read emits many at once), so the notifications it
rebuilds can differ from the ones already sent (another event time, other alerts beside), and
their ids with them. Were a notification sent before the state that raised it was saved, the
new merger would page again for the same alert. It is not: a notification waits for the next
save, and the saved state carries it, so after a stop either both are there or neither.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drifthouse.alerts.base import MemoryReceiver, Notification
from drifthouse.alerts.delivery import DeliveryWorker, Outbox
from drifthouse.alerts.service import Alerting
from drifthouse.sinks.alert_state import AlertStateStore
from drifthouse.sinks.store import open_store
from tests.alerts.conftest import MIN, mrow
from tests.alerts.test_pipeline import config
from tests.fakes import FakeApi

Host = Callable[..., Alerting]


@pytest.fixture(params=["store", "folder"])
def host(request: pytest.FixtureRequest, api: FakeApi, tmp_path: Path) -> Iterator[Host]:
    """Makes the alerting of a merger on a host of its own: the state in the store (the live
    merger's), or in the host's folder (the same host again: a folder can not move)."""
    if request.param == "folder":
        yield lambda name, **kw: Alerting(config(api, tmp_path / "host"), **kw)
        return
    _, database = request.getfixturevalue("ch_database")
    dsn = request.getfixturevalue("ch_dsn")

    def make(name: str, **kw: Any) -> Alerting:
        state = AlertStateStore(open_store(dsn, database), database)
        return Alerting(config(api, tmp_path / name), state_store=state, **kw)

    yield make


def errors(alerting: Alerting, minute: int, models: list[str], value: float) -> None:
    """The 5xx rate of ``models``' windows ending at ``minute``, each closed on its own."""
    for model in models:
        rows = [mrow(minute, value, metric="error_rate_5xx", feature="", model=model)]
        alerting.process(rows, watermark=minute * MIN)


def triggers_and_resolves(api: FakeApi) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for event in api.pd_events():
        out.setdefault(event["dedup_key"], []).append(event["event_action"])
    return out


def test_a_merger_stopped_before_it_saved_has_paged_nothing_the_next_one_pages_again(
    api: FakeApi, host: Host
) -> None:
    first = host("host-a")
    first.save_state()  # the last save before the stop: nothing firing yet
    errors(first, 1, ["fraud"], 0.2)
    assert first.worker is not None
    assert first.worker.flush(timeout=10)
    first.worker.stop()  # stopped (SIGKILL, or a host lost) before its next save
    sent_before_the_stop = len(api.pd_events())

    second = host("host-b")
    # The re-read closes the same windows in another order: churn's before fraud's.
    errors(second, 1, ["churn", "fraud"], 0.2)
    errors(second, 2, ["churn", "fraud"], 0.3)
    errors(second, 3, ["churn", "fraud"], 0.0)
    second.advance(10 * MIN)  # what waits for the group interval falls due
    second.close()
    by_key = triggers_and_resolves(api)
    assert sorted(by_key.values()) == [["trigger", "resolve"]] * 2, by_key
    assert sent_before_the_stop == 0


def test_what_a_save_carries_is_sent_by_the_next_merger_once(api: FakeApi, host: Host) -> None:
    first = host("host-a", start=False)  # stopped before its delivery threads sent anything
    errors(first, 1, ["churn", "fraud"], 0.2)
    first.save_state()  # saved with the notifications it raised
    assert first.worker is not None
    first.worker.stop()
    assert api.pd_events() == []

    second = host("host-b")
    errors(second, 1, ["fraud", "churn"], 0.2)  # re-read, in another order: late, skipped
    errors(second, 2, ["churn", "fraud"], 0.0)
    second.advance(10 * MIN)
    second.close()
    by_key = triggers_and_resolves(api)
    assert sorted(by_key.values()) == [["trigger", "resolve"]] * 2, by_key
    for actions in by_key.values():
        assert all(a != b for a, b in itertools.pairwise(actions))


def test_without_a_place_to_save_notifications_go_at_once(api: FakeApi) -> None:
    cfg = config(api, Path("unused"))
    cfg = cfg.model_copy(update={"alerting": cfg.alerting.model_copy(update={"outbox_dir": None})})
    mem = MemoryReceiver()
    alerting = Alerting(cfg, receivers={"pagerduty": mem, "slack": mem})
    errors(alerting, 1, ["fraud"], 0.2)
    assert alerting.worker is not None
    assert alerting.worker.flush(timeout=10)
    assert [n.kind for n in mem.sent] == ["firing", "firing"]
    alerting.close()


class SlowReceiver:
    """Takes each notification after ``seconds``; counts what it took."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = threading.Event()
        self.took: list[str] = []

    def send(self, notification: Notification) -> None:
        self.started.set()
        time.sleep(self.seconds)
        self.took.append(notification.id)


def test_a_merger_stopped_in_order_mid_send_leaves_nothing_to_send_again(
    tmp_path: Path,
) -> None:
    """An orderly stop (a rebalance, a rolling restart) waits for the send in flight, whose
    answer the outbox records: the next owner does not send it again."""
    slow = SlowReceiver(0.5)
    first = DeliveryWorker({"pd": slow}, Outbox(tmp_path))
    first.start()
    first.enqueue(Notification(id="n1", receiver="pd", kind="firing", ts=0, group_key="g",
                               group_labels={}, firing=[], resolved=[]))  # fmt: skip
    assert slow.started.wait(10)
    first.stop(timeout=0.05)  # shorter than the send in flight
    second = DeliveryWorker({"pd": slow}, Outbox(tmp_path))
    second.start()
    assert second.flush(timeout=10)
    second.stop()
    assert slow.took == ["n1"]


def test_a_merger_that_lost_its_shard_without_knowing_sends_nothing(
    api: FakeApi, tmp_path: Path, ch_dsn: str, ch_database: tuple[Any, str]
) -> None:
    """A stale owner (paused past its session, cut off from Kafka but not from the store) whose
    shard went to another merger: the new owner claims the shard's alerting in the store when
    it opens, and the old one's delivery threads, which check the claim before each send, stop;
    what they held is sent by the new owner, once."""
    _, database = ch_database

    def host(name: str, **kw: Any) -> Alerting:
        state = AlertStateStore(open_store(ch_dsn, database), database)
        return Alerting(config(api, tmp_path / name), state_store=state, **kw)

    stale = host("host-a", start=False)  # its delivery threads are not running yet
    errors(stale, 1, ["fraud"], 0.2)
    stale.save_state()
    owner = host("host-b")  # the shard moved: it loads the outbox, with what is pending
    assert owner.flush(timeout=10)
    assert stale.worker is not None
    stale.worker.start()  # the stale owner wakes up
    time.sleep(1.0)
    stale.worker.stop()
    owner.close()
    assert [e["event_action"] for e in api.pd_events()] == ["trigger"]
    assert len(api.slack_calls("chat.postMessage")) == 1
