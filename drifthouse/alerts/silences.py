"""Silences: matchers over alert labels, a time range, an author and a reason.

A silenced alert is still evaluated, stored and logged (``alert.muted``), but no receiver hears
of it. Silences are matched against the alert's event time, which tracks the wall clock in a live
run; a replay of history therefore sees the silences that were in force back then.

Two stores: :class:`MemorySilenceStore` (tests, the demo) and :class:`ClickHouseSilenceStore`
(table ``silences``, created here with ``CREATE TABLE IF NOT EXISTS``). The functions
:func:`add_silence`, :func:`list_silences` and :func:`expire_silence` back
``drifthouse silence add|list|expire``.

Example
-------
>>> store = MemorySilenceStore()
>>> s = add_silence(store, ["model=fraud", "rule=data-*"], duration_ms=3_600_000,
...                 author="ana", reason="retraining", now_ms=0)
>>> [x.id for x in store.active(1_000)] == [s.id]
True
>>> s.matches({"model": "fraud", "rule": "data-drift"})
True
>>> expire_silence(store, s.id, now_ms=2_000).ends_at
2000
>>> store.active(3_000)
[]
"""

from __future__ import annotations

import fnmatch
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec

from drifthouse.errors import ConfigError
from drifthouse.sinks.cluster import on_cluster
from drifthouse.sinks.schema import table_ddl
from drifthouse.sinks.store import call, insert

__all__ = [
    "ClickHouseSilenceStore",
    "MemorySilenceStore",
    "Silence",
    "SilenceStore",
    "add_silence",
    "expire_silence",
    "list_silences",
    "parse_matchers",
]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


class Silence(msgspec.Struct, frozen=True, kw_only=True):
    """Mutes every alert whose labels match all ``matchers`` (exact or glob) in ``[starts_at, ends_at)``."""

    id: str
    matchers: dict[str, str]
    starts_at: int
    ends_at: int
    created_by: str
    reason: str
    created_at: int

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(fnmatch.fnmatchcase(labels.get(k, ""), v) for k, v in self.matchers.items())

    def active_at(self, ts: int) -> bool:
        return self.starts_at <= ts < self.ends_at


class SilenceStore(Protocol):
    """Where silences live. ``put`` inserts or replaces by ``id``."""

    def put(self, silence: Silence) -> None: ...

    def all(self) -> list[Silence]: ...

    def active(self, ts: int) -> list[Silence]: ...


class MemorySilenceStore:
    """Silences in a dict; thread-safe."""

    def __init__(self, silences: Sequence[Silence] = ()) -> None:
        self._lock = threading.Lock()
        self._by_id = {s.id: s for s in silences}

    def put(self, silence: Silence) -> None:
        with self._lock:
            self._by_id[silence.id] = silence

    def all(self) -> list[Silence]:
        with self._lock:
            return sorted(self._by_id.values(), key=lambda s: (s.starts_at, s.id))

    def active(self, ts: int) -> list[Silence]:
        return [s for s in self.all() if s.active_at(ts)]


class ClickHouseSilenceStore:
    """Silences in ClickHouse table ``silences`` (ReplacingMergeTree, read with ``FINAL``).

    ``client`` is a clickhouse-connect client (server or embedded ``chdb://``); the table is
    created on construction if it does not exist. Reads are cached for ``cache_seconds``
    (wall time) and dropped by this store's own writes; a silence added by another process
    takes effect within that time. Every call goes through :func:`drifthouse.sinks.store.call`,
    so an outage raises :class:`~drifthouse.errors.StoreUnavailable` as elsewhere.
    """

    def __init__(
        self,
        client: Any,
        database: str = "drifthouse",
        *,
        cache_seconds: float = 5.0,
        cluster: str | None = None,
    ) -> None:
        self.client = client
        self.database = database
        self.cache_seconds = cache_seconds
        self._cache: tuple[float, list[Silence]] | None = None
        doing = f"creating table {database}.silences"
        call(
            doing,
            client.command,
            on_cluster(f"CREATE DATABASE IF NOT EXISTS {database}", cluster),
        )
        # The table as the migrations define it (table ``silences``: one row per silence;
        # expiring writes a newer version of the row), replicated on a cluster (store.cluster).
        call(doing, client.command, table_ddl("silences", database, cluster=cluster))
        self._version = 0

    def put(self, silence: Silence) -> None:
        # The version must grow across processes too: nanoseconds of the wall clock do.
        version = max(time.time_ns(), self._version + 1)
        self._version = version
        row = [
            silence.id,
            silence.matchers,
            _dt(silence.starts_at),
            _dt(silence.ends_at),
            silence.created_by,
            silence.reason,
            _dt(silence.created_at),
            version,
        ]
        insert(
            f"writing silence {silence.id}",
            self.client,
            f"{self.database}.silences",
            [row],
            column_names=[
                "id",
                "matchers",
                "starts_at",
                "ends_at",
                "created_by",
                "reason",
                "created_at",
                "version",
            ],
        )
        self._cache = None

    def all(self) -> list[Silence]:
        """Every silence; cached for ``cache_seconds`` of wall time (silences are read per flush)."""
        cached = self._cache
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return list(cached[1])
        silences = self._read()
        self._cache = (time.monotonic(), silences)
        return list(silences)

    def _read(self) -> list[Silence]:
        query = (
            "SELECT id, matchers, toUnixTimestamp64Milli(starts_at), toUnixTimestamp64Milli(ends_at), "
            f"created_by, reason, toUnixTimestamp64Milli(created_at) FROM {self.database}.silences FINAL "
            "ORDER BY starts_at, id"
        )
        rows = call(f"reading {self.database}.silences", self.client.query, query).result_rows
        return [
            Silence(
                id=r[0],
                matchers=dict(r[1]),
                starts_at=int(r[2]),
                ends_at=int(r[3]),
                created_by=r[4],
                reason=r[5],
                created_at=int(r[6]),
            )
            for r in rows
        ]

    def active(self, ts: int) -> list[Silence]:
        return [s for s in self.all() if s.active_at(ts)]


def parse_matchers(items: Sequence[str]) -> dict[str, str]:
    """``["model=fraud", "rule=data-*"]`` -> ``{"model": "fraud", "rule": "data-*"}``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ConfigError(
                f"matcher {item!r} must look like label=value or label=glob, e.g. model=fraud or rule=data-*"
            )
        out[name] = value.strip()
    if not out:
        raise ConfigError("a silence needs at least one matcher, e.g. model=fraud")
    return out


def add_silence(
    store: SilenceStore,
    matchers: Sequence[str] | Mapping[str, str],
    *,
    author: str,
    reason: str,
    now_ms: int,
    duration_ms: int | None = None,
    starts_at: int | None = None,
    ends_at: int | None = None,
) -> Silence:
    """Create a silence from ``starts_at`` (default now) for ``duration_ms`` or until ``ends_at``."""
    matcher_map = dict(matchers) if isinstance(matchers, Mapping) else parse_matchers(matchers)
    start = now_ms if starts_at is None else starts_at
    if ends_at is None:
        if duration_ms is None or duration_ms <= 0:
            raise ConfigError("a silence needs a positive duration (e.g. 2h) or an end time")
        ends_at = start + duration_ms
    if ends_at <= start:
        raise ConfigError(f"a silence must end after it starts (starts {start}, ends {ends_at})")
    if not author.strip() or not reason.strip():
        raise ConfigError("a silence needs an author and a reason, so the next on-call knows why")
    silence = Silence(
        id=uuid.uuid4().hex[:12],
        matchers=matcher_map,
        starts_at=start,
        ends_at=ends_at,
        created_by=author,
        reason=reason,
        created_at=now_ms,
    )
    store.put(silence)
    return silence


def list_silences(
    store: SilenceStore, *, now_ms: int, include_expired: bool = False
) -> list[Silence]:
    """Silences in force now or later (and, with ``include_expired``, past ones too)."""
    return [s for s in store.all() if include_expired or s.ends_at > now_ms]


def expire_silence(store: SilenceStore, silence_id: str, *, now_ms: int) -> Silence:
    """End a silence now; raise :class:`ConfigError` when there is no such silence."""
    for s in store.all():
        if s.id == silence_id:
            expired = msgspec.structs.replace(s, ends_at=min(s.ends_at, now_ms))
            store.put(expired)
            return expired
    raise ConfigError(f"no silence with id {silence_id!r}; `drifthouse silence list` shows the ids")
