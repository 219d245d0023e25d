"""Alerting's state in the store, table ``alert_state`` (migration ``0005``).

The live merger's alerting keeps state that decides what is paged: the rule engine's series and
the dispatcher's groups (what fires, what was notified), the outbox of notifications handed to
delivery (pending or done, by notification id) and the Slack receivers' message index (which
message to turn green on a resolve). On a host's disk that state stays behind when the merger
moves to another host, which then pages again or misses a resolve; in the store the next merger
finds it wherever it runs.

One row per ``(group, shard, kind, key)``: the consumer group and the merge shard that own the
state, then ``kind`` ``state`` (key ``''``), ``outbox`` (key: the notification id; ``status``
``pending``, ``done`` or ``failed``), ``slack`` (key: the receiver's name) or ``owner`` (key
``''``: the merger that last claimed the shard's alerting, which alone sends). A write is an insert
with a higher ``version`` (``ReplacingMergeTree(version)``, read with ``FINAL``). Versions are
nanoseconds of the wall clock, never below the highest version the scope already holds, so a
merger on a host whose clock is behind the previous one's still writes the newest rows.

Examples
--------
>>> from drifthouse.sinks.store import open_store                     # doctest: +SKIP
>>> store = AlertStateStore(open_store("chdb:///tmp/s"), "drifthouse")  # doctest: +SKIP
>>> scope = store.scoped("drifthouse", shard="0")                     # doctest: +SKIP
>>> scope.write("state", "", '{"engine": {}}')                         # doctest: +SKIP
>>> scope.read("state", "")                                            # doctest: +SKIP
'{"engine": {}}'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from drifthouse.sinks.cluster import on_cluster
from drifthouse.sinks.schema import table_ddl
from drifthouse.sinks.store import call, insert

__all__ = ["AlertStateStore", "OutboxRows"]

_COLUMNS = ["group", "shard", "kind", "key", "status", "version", "saved_at", "body"]


@dataclass(frozen=True)
class OutboxRows:
    """The outbox of one scope as stored: pending notifications (id, JSON), oldest first, and
    the ids of the newest ``keep_done`` notifications delivered or given up."""

    pending: list[tuple[str, str]] = field(default_factory=list)
    done: list[str] = field(default_factory=list)


class AlertStateStore:
    """Read and write alerting's state of one consumer group and merge shard.

    Parameters
    ----------
    client:
        A clickhouse-connect client (server or embedded ``chdb://``), used by this store alone:
        the delivery threads write through it too, one call at a time.
    database:
        The drifthouse database; the table is created there if it does not exist.
    group, shard:
        The scope (see :meth:`scoped`): the consumer group and the merge shard owning the state.
    cluster:
        ``store.cluster``: the table is created replicated, ``ON CLUSTER``.
    clock_ns:
        Wall-clock nanoseconds (versions); tests give a clock that lags.
    lock, create:
        For :meth:`scoped`: the lock of the client (one call at a time, whatever the scope),
        and whether to create the table (already done).
    """

    def __init__(
        self,
        client: Any,
        database: str = "drifthouse",
        *,
        group: str = "",
        shard: str = "",
        cluster: str | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        lock: threading.Lock | None = None,
        create: bool = True,
    ) -> None:
        self.client = client
        self.database = database
        self.table = f"`{database}`.alert_state"
        self.group = group
        self.shard = shard
        self.cluster = cluster
        self._clock_ns = clock_ns
        self._lock = lock or threading.Lock()
        if create:
            doing = f"creating table {database}.alert_state"
            with self._lock:
                call(
                    doing,
                    client.command,
                    on_cluster(f"CREATE DATABASE IF NOT EXISTS `{database}`", cluster),
                )
                call(doing, client.command, table_ddl("alert_state", database, cluster=cluster))
        self._version = self._max_version()

    def scoped(self, group: str, shard: str = "") -> AlertStateStore:
        """The same table and client, for the state of ``group`` and ``shard``."""
        return AlertStateStore(
            self.client,
            self.database,
            group=group,
            shard=shard,
            cluster=self.cluster,
            clock_ns=self._clock_ns,
            lock=self._lock,
            create=False,
        )

    def _params(self, **more: str) -> dict[str, str]:
        return {"group": self.group, "shard": self.shard, **more}

    def _max_version(self) -> int:
        with self._lock:
            result = call(
                "reading the alert state's version",
                self.client.query,
                f"SELECT max(version) FROM {self.table} "
                "WHERE group = {group:String} AND shard = {shard:String}",
                parameters=self._params(),
            )
        rows = result.result_rows
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def read(self, kind: str, key: str) -> str | None:
        """The newest body written for ``(kind, key)``; ``None`` if there is none."""
        with self._lock:
            result = call(
                f"reading the alert state ({kind})",
                self.client.query,
                f"SELECT body FROM {self.table} FINAL WHERE group = {{group:String}} "
                "AND shard = {shard:String} AND kind = {kind:String} AND key = {key:String}",
                parameters=self._params(kind=kind, key=key),
            )
        rows = result.result_rows
        return str(rows[0][0]) if rows else None

    def write(self, kind: str, key: str, body: str, status: str = "") -> None:
        """Store ``body`` as the newest version of ``(kind, key)``."""
        self.write_many(kind, [(key, status, body)])

    def write_many(self, kind: str, items: list[tuple[str, str, str]]) -> None:
        """Store several ``(key, status, body)`` of one kind in one insert, in this order."""
        if not items:
            return
        with self._lock:
            now = datetime.now(UTC)
            rows = []
            for key, status, body in items:
                # Above every version the scope holds, even when this host's clock is behind.
                self._version = max(self._clock_ns(), self._version + 1)
                rows.append([self.group, self.shard, kind, key, status, self._version, now, body])
            insert(
                f"writing the alert state ({kind})",
                self.client,
                self.table,
                rows,
                column_names=_COLUMNS,
            )

    def outbox(self, keep_done: int) -> OutboxRows:
        """The pending notifications and the newest ``keep_done`` delivered ids."""
        where = "WHERE group = {group:String} AND shard = {shard:String} AND kind = 'outbox'"
        with self._lock:
            pending = call(
                "reading the alert outbox",
                self.client.query,
                f"SELECT key, body FROM {self.table} FINAL {where} AND status = 'pending' "
                "ORDER BY version",
                parameters=self._params(),
            ).result_rows
            done = call(
                "reading the alert outbox",
                self.client.query,
                f"SELECT key FROM {self.table} FINAL {where} AND status != 'pending' "
                "ORDER BY version DESC LIMIT {keep:UInt64}",
                parameters={**self._params(), "keep": keep_done},
            ).result_rows
        return OutboxRows(
            pending=[(str(k), str(b)) for k, b in pending],
            done=[str(k) for (k,) in reversed(done)],
        )

    def close(self) -> None:
        """Close the client (the store's own; never a client shared with a sink)."""
        with self._lock:
            self.client.close()
