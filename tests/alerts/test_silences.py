from __future__ import annotations

from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from drifthouse.alerts.silences import (
    ClickHouseSilenceStore,
    MemorySilenceStore,
    SilenceStore,
    add_silence,
    expire_silence,
    list_silences,
    parse_matchers,
)
from drifthouse.errors import ConfigError, StoreUnavailable

H = 3_600_000


@pytest.fixture(params=["memory", "clickhouse"])
def store(request: pytest.FixtureRequest) -> SilenceStore:
    if request.param == "memory":
        return MemorySilenceStore()
    client, database = request.getfixturevalue("ch_database")
    return ClickHouseSilenceStore(client, database)


def test_add_list_expire(store: SilenceStore) -> None:
    a = add_silence(
        store, ["model=fraud"], duration_ms=2 * H, author="ana", reason="retraining", now_ms=10 * H
    )
    b = add_silence(
        store,
        ["rule=data-*", "feature=amount"],
        duration_ms=H,
        author="bo",
        reason="known shift",
        now_ms=10 * H,
        starts_at=11 * H,
    )
    assert {s.id for s in list_silences(store, now_ms=10 * H)} == {a.id, b.id}
    assert [s.id for s in store.active(10 * H + 1)] == [a.id]
    assert {s.id for s in store.active(11 * H + 1)} == {a.id, b.id}
    got = {s.id: s for s in store.all()}[b.id]
    assert got == b  # matchers, times, author and reason survive the store
    expired = expire_silence(store, a.id, now_ms=10 * H + 5)
    assert expired.ends_at == 10 * H + 5
    assert [s.id for s in store.active(10 * H + 6)] == []
    assert [s.id for s in list_silences(store, now_ms=10 * H + 6)] == [b.id]
    assert {s.id for s in list_silences(store, now_ms=10 * H + 6, include_expired=True)} == {
        a.id,
        b.id,
    }


def test_matchers() -> None:
    silence = add_silence(
        MemorySilenceStore(),
        ["model=fraud*", "severity=warning"],
        duration_ms=H,
        author="ana",
        reason="r",
        now_ms=0,
    )
    assert silence.matches({"model": "fraud-v2", "severity": "warning"})
    assert not silence.matches({"model": "fraud-v2", "severity": "critical"})
    assert not silence.matches({"severity": "warning"})


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        pytest.param(lambda s: parse_matchers(["model"]), "label=value", id="no-equals"),
        pytest.param(lambda s: parse_matchers([]), "at least one matcher", id="no-matchers"),
        pytest.param(
            lambda s: add_silence(s, ["model=x"], author="a", reason="r", now_ms=0),
            "positive duration",
            id="no-duration",
        ),
        pytest.param(
            lambda s: add_silence(s, ["model=x"], duration_ms=H, author="", reason="r", now_ms=0),
            "author",
            id="no-author",
        ),
        pytest.param(
            lambda s: add_silence(s, ["model=x"], ends_at=0, author="a", reason="r", now_ms=5),
            "end after",
            id="ends-before",
        ),
        pytest.param(
            lambda s: expire_silence(s, "nope", now_ms=0), "no silence with id", id="unknown-id"
        ),
    ],
)
def test_errors(call: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        call(MemorySilenceStore())


class _Outage:
    """The embedded client, until ``down``: then every call fails as an unreachable server does."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if name not in ("command", "insert", "query"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise OperationalError("Error HTTPConnectionPool: Connection refused")
            return attr(*args, **kwargs)

        return call


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(
            lambda client, db: ClickHouseSilenceStore(client, db), id="creating-the-table"
        ),
        pytest.param(
            lambda client, db: add_silence(
                ClickHouseSilenceStore(client, db, cache_seconds=0),
                ["model=x"],
                duration_ms=H,
                author="a",
                reason="r",
                now_ms=0,
            ),
            id="writing",
        ),
        pytest.param(
            lambda client, db: ClickHouseSilenceStore(client, db, cache_seconds=0).active(0),
            id="reading",
        ),
    ],
)
def test_an_unreachable_store_is_unavailable_not_broken(
    ch_database: tuple[Any, str], step: Any
) -> None:
    """Silences are store calls like any other: an outage is ``StoreUnavailable`` (retry may
    help), translated in ``sinks.store`` with the words every store call uses."""
    client, database = ch_database
    outage = _Outage(client)
    ClickHouseSilenceStore(outage, database)  # the table exists
    outage.down = True
    with pytest.raises(StoreUnavailable, match="ClickHouse is unreachable while"):
        step(outage, database)
