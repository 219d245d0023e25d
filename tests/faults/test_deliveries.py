"""The delivery check lets through only the documented repeat of a request in flight at a kill."""

from __future__ import annotations

import threading
from typing import Any

from tests.fakes import FakeApi, Recorded
from tests.faults.conftest import IN_FLIGHT, deliveries


def _api(*requests: tuple[float, dict[str, Any]]) -> FakeApi:
    api = FakeApi.__new__(FakeApi)  # no server: only the record of what was answered
    api.requests = [Recorded("POST", "/v2/enqueue", {}, body, 202, at) for at, body in requests]
    api._lock = threading.Lock()
    return api


def _trigger(key: str) -> dict[str, Any]:
    return {"event_action": "trigger", "dedup_key": key}


def test_a_request_answered_just_before_a_kill_may_come_once_more_after_it() -> None:
    api = _api((9.5, _trigger("a")), (10.5, _trigger("a")), (11.0, _trigger("b")))
    assert deliveries(api, kills=[10.0])[0] == [_trigger("a"), _trigger("b")]


def test_a_repeat_without_a_kill_or_long_after_the_send_is_kept() -> None:
    api = _api((1.0, _trigger("a")), (10.5, _trigger("a")))
    assert deliveries(api)[0] == [_trigger("a"), _trigger("a")]
    assert deliveries(api, kills=[1.0 + IN_FLIGHT + 1.0])[0] == [_trigger("a"), _trigger("a")]


def test_each_request_in_flight_is_forgiven_one_repeat_only() -> None:
    api = _api((9.5, _trigger("a")), (10.5, _trigger("a")), (10.6, _trigger("a")))
    assert deliveries(api, kills=[10.0])[0] == [_trigger("a"), _trigger("a")]


def test_a_repeat_sent_before_the_kill_is_kept() -> None:
    api = _api((9.0, _trigger("a")), (9.5, _trigger("a")))
    assert deliveries(api, kills=[10.0])[0] == [_trigger("a"), _trigger("a")]
