"""Withdrawing a rewritten window's drift attribution rows from ClickHouse.

A window rewritten whole (a partition that was idle woke with its share of it) may lead with
other bins, or not be drifted at all any more: its first write's attribution rows that the
rewrite does not write again must go, or ``metrics FINAL`` would show them next to the complete
window's rows, which a replay never writes (docs/clickhouse.md, "Writing the same window
twice"). A ReplacingMergeTree replaces a row by key and never removes a key, so the sink deletes
them with a lightweight ``DELETE``, one per :class:`~drifthouse.rows.AttributionWithdrawal`, in
the order the rows were written: after the rows of the batches before it, the first write's
among them (a spooled batch is replayed, whole and in order, before the batches after it).

The statement names the window's partition (``window_start``) and the head of the sorting key
(``model``, ``metric``), so it reads one month's granules of the attribution metrics of one
model; ``computed_at <= `` the rewrite's and the rewrite's own keys spare every row written
since, so a delete run late (a spool replayed) never takes a newer row.
"""

from __future__ import annotations

from collections.abc import Sequence

from drifthouse.rows import ATTRIBUTION_METRICS, AttributionWithdrawal
from drifthouse.sinks.store import Client, call

__all__ = ["withdraw"]

_DELETE = """DELETE FROM `{database}`.metrics
WHERE model = {{model:String}}
  AND metric IN {{metrics:Array(String)}}
  AND window_start = fromUnixTimestamp64Milli({{start:Int64}}, 'UTC')
  AND window = {{window:String}}
  AND model_version = {{version:String}}
  AND run_id = {{run:String}}
  AND computed_at <= fromUnixTimestamp64Milli({{at:Int64}}, 'UTC')
  AND NOT has({{keep:Array(Tuple(String, String, String, String))}},
              (toString(feature), segment, toString(metric), bin))"""


def withdraw(client: Client, database: str, rows: Sequence[AttributionWithdrawal]) -> None:
    """Delete the rows each withdrawal names, in order (see the module docs).

    Raises
    ------
    StoreUnavailable
        The store is away (the caller retries or spools the withdrawals).
    StoreError
        The store refused the statement.
    """
    statement = _DELETE.format(database=database)
    metrics = sorted(ATTRIBUTION_METRICS)
    for row in rows:
        parameters = {
            "model": row.model,
            "metrics": metrics,
            "start": row.window_start,
            "window": row.window,
            "version": row.model_version,
            "run": row.run_id,
            "at": row.computed_at,
            "keep": [tuple(k) for k in row.keep],
        }
        call(
            f"withdrawing the attribution rows of {row.model} {row.window} {row.window_start}",
            client.command,
            statement,
            parameters=parameters,
        )
