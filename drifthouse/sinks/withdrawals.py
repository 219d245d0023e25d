"""Withdrawing a rewritten window's drift attribution rows from ClickHouse.

A window rewritten whole (a partition that was idle woke with its share of it) may lead with
other bins, or not be drifted at all any more: its first write's attribution rows that the
rewrite does not write again must go, or ``metrics FINAL`` would show them next to the complete
window's rows, which a replay never writes (docs/clickhouse.md, "Writing the same window
twice"). A ReplacingMergeTree replaces a row by key and never removes a key, so the sink deletes
them with a lightweight ``DELETE`` (one statement for up to a hundred
:class:`~drifthouse.rows.AttributionWithdrawal` rows, run only when a ``SELECT`` finds a row to
go), in the order the rows were written: after the rows of the batches before it, the first write's
among them (a spooled batch is replayed, whole and in order, before the batches after it).

The statement names the window's partition (``window_start``) and the head of the sorting key
(``model``, ``metric``), so it reads one month's granules of the attribution metrics of one
model; ``computed_at <= `` the rewrite's and the rewrite's own keys spare every row written
since, so a delete run late (a spool replayed) never takes a newer row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drifthouse.rows import ATTRIBUTION_METRICS, AttributionWithdrawal
from drifthouse.sinks.store import Client, call

__all__ = ["withdraw"]

#: Withdrawals per statement: one statement names each one's window, keys and version.
_PER_STATEMENT = 100

_ONE = (
    "(model = {{m{i}:String}} AND window_start = fromUnixTimestamp64Milli({{s{i}:Int64}}, 'UTC') "
    "AND window = {{w{i}:String}} AND model_version = {{v{i}:String}} AND run_id = {{r{i}:String}} "
    "AND computed_at <= fromUnixTimestamp64Milli({{a{i}:Int64}}, 'UTC') "
    "AND NOT has({{k{i}:Array(Tuple(String, String, String, String))}}, "
    "(toString(feature), segment, toString(metric), bin)))"
)


def withdraw(client: Client, database: str, rows: Sequence[AttributionWithdrawal]) -> None:
    """Delete the rows the withdrawals name (see the module docs): per hundred withdrawals, one
    ``SELECT`` finds whether any row is to go, and only then one ``DELETE`` takes them (a
    rewrite with the keys of its first write, the common case, deletes nothing and costs no
    mutation).

    Raises
    ------
    StoreUnavailable
        The store is away (the caller retries or spools the withdrawals).
    StoreError
        The store refused the statement.
    """
    for lo in range(0, len(rows), _PER_STATEMENT):
        chunk = rows[lo : lo + _PER_STATEMENT]
        parameters: dict[str, Any] = {"metrics": sorted(ATTRIBUTION_METRICS)}
        for i, row in enumerate(chunk):
            parameters.update(
                {f"m{i}": row.model, f"s{i}": row.window_start, f"w{i}": row.window,
                 f"v{i}": row.model_version, f"r{i}": row.run_id, f"a{i}": row.computed_at,
                 f"k{i}": [tuple(k) for k in row.keep]}
            )  # fmt: skip
        where = (
            "metric IN {metrics:Array(String)} AND ("
            + " OR ".join(_ONE.format(i=i) for i in range(len(chunk)))
            + ")"
        )
        doing = f"withdrawing the attribution rows of {len(chunk)} rewritten windows"
        found = call(
            doing,
            client.query,
            f"SELECT count() FROM `{database}`.metrics WHERE {where}",
            parameters=parameters,
        )
        if int(found.result_rows[0][0]):
            call(doing, client.command, f"DELETE FROM `{database}`.metrics WHERE {where}",
                 parameters=parameters)  # fmt: skip
