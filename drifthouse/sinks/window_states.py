"""Stored base-window states, table ``window_states`` (migration ``0006``).

A window configured with ``from`` (``{size: 1d, from: 1h}``) holds no stream state: the merger
stores the whole mergeable state of every closed base window (``1h``) of a model, and builds the
long window from the stored states of its span once the watermark has passed its end
(:mod:`drifthouse.stream.derived`). This module turns a state into a row and back, and reads the
rows of a span: from ClickHouse (:class:`StoredWindowStates`), or from a
:class:`~drifthouse.sinks.base.MemorySink` in tests and the demo (:class:`MemoryWindowStates`).

A state is kept whole and exact: the model state's own bytes (the partials' wire format),
LZ4-framed, as base64 text in a ``String`` column.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import lz4.frame

from drifthouse.rows import WindowStateRow
from drifthouse.sinks.base import MemorySink
from drifthouse.sinks.clickhouse import ClickHouseSink
from drifthouse.sinks.store import call

__all__ = [
    "MemoryWindowStates",
    "StoredState",
    "StoredWindowStates",
    "WindowStates",
    "decode_state",
    "encode_state",
    "states_of",
]


def encode_state(data: bytes) -> str:
    """A state's bytes as the ``state`` column holds them."""
    return base64.b64encode(lz4.frame.compress(data)).decode()


def decode_state(text: str) -> bytes:
    """The bytes :func:`encode_state` stored."""
    return bytes(lz4.frame.decompress(base64.b64decode(text)))


@dataclass(frozen=True)
class StoredState:
    """One stored base window of one model version: its start and its state's bytes."""

    model: str
    start: int
    model_version: str
    state: bytes


class WindowStates(Protocol):
    """Where base-window states are read back."""

    def load(
        self, *, models: Sequence[str], window: str, run_id: str, lo_ms: int, hi_ms: int
    ) -> list[StoredState]:
        """The models' stored states of ``window`` starting in ``[lo_ms, hi_ms)``, ascending
        by model, start and version."""
        ...


class StoredWindowStates:
    """Base-window states read from ClickHouse (``FINAL``: a rewritten window's newest row)."""

    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.table = f"`{database}`.window_states"

    def load(
        self, *, models: Sequence[str], window: str, run_id: str, lo_ms: int, hi_ms: int
    ) -> list[StoredState]:
        result = call(
            "reading stored window states",
            self.client.query,
            "SELECT model, toUnixTimestamp64Milli(window_start), model_version, state "
            f"FROM {self.table} FINAL "
            "WHERE model IN {models:Array(String)} AND run_id = {run:String} "
            "AND window = {w:String} "
            "AND window_start >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
            "AND window_start < fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
            "ORDER BY model, window_start, model_version",
            parameters={
                "models": list(models), "run": run_id, "w": window, "lo": lo_ms, "hi": hi_ms,
            },
        )  # fmt: skip
        return [
            StoredState(str(model), int(start), str(version), decode_state(str(text)))
            for model, start, version, text in result.result_rows
        ]


class MemoryWindowStates:
    """Base-window states read from a :class:`MemorySink`'s flushed rows."""

    def __init__(self, sink: MemorySink) -> None:
        self.sink = sink

    def load(
        self, *, models: Sequence[str], window: str, run_id: str, lo_ms: int, hi_ms: int
    ) -> list[StoredState]:
        wanted = set(models)
        rows: list[WindowStateRow] = [
            r
            for r in self.sink.rows("window_states")
            if r.model in wanted
            and (r.window, r.run_id) == (window, run_id)
            and lo_ms <= r.window_start < hi_ms
        ]
        rows.sort(key=lambda r: (r.model, r.window_start, r.model_version))
        return [
            StoredState(r.model, r.window_start, r.model_version, decode_state(r.state))
            for r in rows
        ]


def states_of(sink: object) -> WindowStates | None:
    """Where the rows ``sink`` writes are read back, looking through the sinks wrapped around
    the store's (``inner``, ``sink``); ``None`` for a sink that keeps nothing readable."""
    for _ in range(8):
        if isinstance(sink, ClickHouseSink):
            return StoredWindowStates(sink.client, sink.database)
        if isinstance(sink, MemorySink):
            return MemoryWindowStates(sink)
        wrapped = getattr(sink, "inner", None) or getattr(sink, "sink", None)
        if wrapped is None:
            return None
        sink = wrapped
    return None
