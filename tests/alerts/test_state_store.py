"""Alert delivery state in the store: a merger that moves to another host (another disk)
neither pages twice nor misses a resolve.

Each "host" is an :class:`Alerting` with a state folder of its own (a fresh, empty one for the
host the merger moves to) and a client of its own on the same store: the embedded engine, and
the same through ClickHouse's HTTP interface (``tests/sinks/chhttp.py``). Slack and PagerDuty
are the real clients aimed at the local fake APIs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drifthouse.alerts.base import MemoryReceiver
from drifthouse.alerts.delivery import DeliveryWorker, Outbox
from drifthouse.alerts.service import STATE_FILE, Alerting
from drifthouse.errors import NotifyError
from drifthouse.sinks.alert_state import AlertStateStore
from drifthouse.sinks.store import open_store
from tests.alerts.test_delivery import pd_note, receivers
from tests.alerts.test_pipeline import config, minute
from tests.fakes import FakeApi
from tests.sinks.conftest import HttpClickHouse

OpenStore = Callable[[], AlertStateStore]


@pytest.fixture(params=["embedded", "http"])
def open_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens the store as a new host would: a client of its own each time."""
    if request.param == "embedded":
        _, database = request.getfixturevalue("ch_database")
        dsn = request.getfixturevalue("ch_dsn")
        yield lambda: AlertStateStore(open_store(dsn, database), database)
        return
    server = HttpClickHouse(tmp_path / "engine")
    server.start()
    try:
        yield lambda: AlertStateStore(open_store(server.dsn, "drifthouse"), "drifthouse")
    finally:
        server.stop()


def _host(api: FakeApi, folder: Path, state: OpenStore, **kwargs: Any) -> Alerting:
    return Alerting(config(api, folder), state_store=state(), **kwargs)


def test_a_merger_on_another_host_neither_repages_nor_misses_the_resolve(
    api: FakeApi, tmp_path: Path, open_state: OpenStore
) -> None:
    first = _host(api, tmp_path / "host-a", open_state)
    minute(first, 1, err=0.2)
    minute(first, 2, err=0.3)
    first.close()  # saves, as the merger does before each commit
    assert [e["event_action"] for e in api.pd_events()] == ["trigger"]

    second = _host(api, tmp_path / "host-b", open_state)  # another disk: empty
    assert [a.rule for a in second.engine.firing()] == ["serving-errors"]
    minute(second, 2, err=0.3)  # re-read after the move (offsets not yet committed)
    minute(second, 3, err=0.4)
    minute(second, 4, err=0.0)
    second.close()
    events = api.pd_events()
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert len({e["dedup_key"] for e in events}) == 1
    assert len(api.slack_calls("chat.postMessage")) == 1
    (update,) = api.slack_calls("chat.update")  # the Slack index moved too: the message turns green
    assert "RESOLVED" in update.body["text"]
    assert not (tmp_path / "host-b" / STATE_FILE).exists()  # the state is in the store


def test_sent_before_the_move_but_state_not_saved_is_not_sent_again(
    api: FakeApi, tmp_path: Path, open_state: OpenStore
) -> None:
    first = _host(api, tmp_path / "host-a", open_state)
    first.save_state()  # the last save before the host is lost: nothing firing yet
    minute(first, 1, err=0.2)
    assert first.flush(timeout=10)
    assert first.worker is not None
    first.worker.stop()  # the host is lost after the page, before the next save

    second = _host(api, tmp_path / "host-b", open_state)
    minute(second, 1, err=0.2)  # re-read: the same notifications, the same ids, delivered already
    minute(second, 2, err=0.0)
    second.close()
    assert [e["event_action"] for e in api.pd_events()] == ["trigger", "resolve"]
    assert len(api.slack_calls("chat.postMessage")) == 1
    assert len(api.slack_calls("chat.update")) == 1


def test_a_notification_pending_at_the_move_is_sent_by_the_new_host_once(
    api: FakeApi, tmp_path: Path, open_state: OpenStore
) -> None:
    first = _host(api, tmp_path / "host-a", open_state, start=False)  # never gets to send
    minute(first, 1, err=0.2)
    first.save_state()
    assert first.worker is not None
    first.worker.stop()
    assert api.requests == []

    second = _host(api, tmp_path / "host-b", open_state)  # sends what the outbox holds
    minute(second, 1, err=0.2)  # re-read after the move
    assert second.flush(timeout=10)
    assert [e["event_action"] for e in api.pd_events()] == ["trigger"]
    minute(second, 2, err=0.0)
    second.close()
    assert [e["event_action"] for e in api.pd_events()] == ["trigger", "resolve"]
    assert len(api.slack_calls("chat.postMessage")) == 1
    assert len(api.slack_calls("chat.update")) == 1


def test_state_of_one_shard_or_group_is_not_another_s(
    api: FakeApi, tmp_path: Path, open_state: OpenStore
) -> None:
    first = _host(api, tmp_path / "a", open_state, shard="3")
    minute(first, 1, err=0.2)
    first.close()
    other_shard = _host(api, tmp_path / "b", open_state, shard="4")
    assert other_shard.engine.firing() == []
    other_shard.close()
    same_shard = _host(api, tmp_path / "c", open_state, shard="3")
    assert [a.rule for a in same_shard.engine.firing()] == ["serving-errors"]
    same_shard.close()
    cfg = config(api, tmp_path / "d")
    cfg = cfg.model_copy(update={"kafka": cfg.kafka.model_copy(update={"group": "another"})})
    other_group = Alerting(cfg, state_store=open_state(), shard="3")
    assert other_group.engine.firing() == []
    other_group.close()


def test_a_host_whose_clock_lags_still_writes_the_newest_state(
    ch_database: tuple[Any, str],
) -> None:
    client, database = ch_database
    ahead = AlertStateStore(client, database, clock_ns=lambda: 2_000_000_000_000_000_000)
    ahead.scoped("g", "0").write("state", "", "from the host whose clock is ahead")
    behind = AlertStateStore(client, database, clock_ns=lambda: 1_000_000_000_000_000_000)
    scope = behind.scoped("g", "0")
    scope.write("state", "", "from the next host")
    assert scope.read("state", "") == "from the next host"
    assert behind.scoped("g", "1").read("state", "") is None


def test_the_store_away_for_a_while_delays_the_saves_and_loses_nothing(
    api: FakeApi, tmp_path: Path
) -> None:
    """While the store is away, pages and resolves still go out (the outbox goes on in memory)
    and the saves wait; the first save after it is back holds everything, for the next host."""
    server = HttpClickHouse(tmp_path / "engine")
    server.start()
    try:

        def state() -> AlertStateStore:
            return AlertStateStore(open_store(server.dsn, "drifthouse"), "drifthouse")

        first = _host(api, tmp_path / "host-a", state)
        minute(first, 1, err=0.2)
        assert first.flush(timeout=10)
        first.save_state()
        server.stop()
        server.wait_refused()
        minute(first, 2, err=0.3)
        first.save_state()  # the store is away: logged, not raised
        minute(first, 3, err=0.0)
        assert first.flush(timeout=10)
        assert [e["event_action"] for e in api.pd_events()] == ["trigger", "resolve"]
        server.start()
        first.close()  # the last save, with the store back: what the outbox missed too
        client = open_store(server.dsn, "drifthouse")
        outbox = client.query(
            "SELECT status, count() FROM alert_state FINAL WHERE kind = 'outbox' GROUP BY status"
        ).result_rows
        client.close()
        assert dict(outbox) == {"done": 4}  # firing and resolved, to PagerDuty and Slack

        second = _host(api, tmp_path / "host-b", state)
        assert second.engine.firing() == []
        assert second.worker is not None
        assert second.worker.outbox.pending() == []
        minute(second, 4, err=0.0)
        second.close()
    finally:
        server.stop()
    assert [e["event_action"] for e in api.pd_events()] == ["trigger", "resolve"]
    assert len(api.slack_calls("chat.postMessage")) == 1
    assert len(api.slack_calls("chat.update")) == 1


def test_the_outbox_in_the_store_keeps_what_was_not_taken_for_the_next_host(
    api: FakeApi, open_state: OpenStore
) -> None:
    """Given up for now (receiver down): pending, for the next host. Refused: never again."""
    api.down()
    mem = MemoryReceiver()
    mem.fail_next = [NotifyError("bad token")]
    scope = ("g", "0")
    first = DeliveryWorker(
        {**receivers(api), "mem": mem},  # type: ignore[dict-item]
        Outbox(store=open_state().scoped(*scope)),
        sleep=lambda _s: None,
        max_attempts=2,
    )
    first.start()
    for i in range(3):
        first.enqueue(pd_note(i))
    first.enqueue(pd_note(9, receiver="mem"))
    assert first.flush(timeout=10)
    first.stop()
    assert first.gave_up == 4
    api.up()
    outbox = Outbox(store=open_state().scoped(*scope))
    assert [n.id for n in outbox.pending()] == [f"pagerduty-{i}-firing" for i in range(3)]
    assert outbox.known("mem-9-firing")  # refused: not pending, and dropped if rebuilt
    second = DeliveryWorker(receivers(api), outbox, sleep=lambda _s: None)  # type: ignore[arg-type]
    second.start()
    assert second.flush(timeout=10)
    assert not second.enqueue(pd_note(0))  # delivered: the same id is dropped
    second.stop()
    assert sorted(e["dedup_key"] for e in api.pd_events()) == ["alert-0", "alert-1", "alert-2"]
    third = Outbox(store=open_state().scoped(*scope))
    assert third.pending() == []
    assert third.known("pagerduty-2-firing")
    assert Outbox(store=open_state().scoped("g", "1")).pending() == []  # another shard's


def test_a_save_that_changes_nothing_writes_nothing(
    api: FakeApi, tmp_path: Path, ch_dsn: str, ch_database: tuple[Any, str]
) -> None:
    """The merger saves after every batch; most close no window, and insert no row."""
    client, database = ch_database
    alerting = _host(api, tmp_path, lambda: AlertStateStore(open_store(ch_dsn, database), database))
    minute(alerting, 1, err=0.2)
    for _ in range(3):
        alerting.save_state()
    versions = client.query(
        f"SELECT count() FROM `{database}`.alert_state WHERE kind = 'state'"
    ).result_rows[0][0]
    alerting.close()
    assert versions == 1
