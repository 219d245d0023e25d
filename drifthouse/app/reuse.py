"""A replay's run id, checked against the store before anything is written (docs/cli.md,
"`drifthouse replay`: a run id holds one replay").

Rows are keyed by run id, and a table keeps the last row of each key: a second replay under
an id that already holds rows would leave the first's rows wherever it writes none (windows
outside its span, label metrics it has no labels for), mixed with its own. So an id that holds
rows is refused, or, with ``--replace``, its rows are deleted first.
"""

from __future__ import annotations

from drifthouse.errors import UsageError
from drifthouse.logs import get_logger
from drifthouse.sinks.runs import count_run, delete_run
from drifthouse.sinks.store import Client

__all__ = ["claim_run_id", "free_run_id"]

log = get_logger("replay")


def claim_run_id(
    client: Client, database: str, run_id: str, *, replace: bool, cluster: str | None = None
) -> dict[str, int]:
    """Make sure ``run_id`` holds no rows: refuse it (:class:`UsageError`) when it does, or with
    ``replace`` delete them; return the rows deleted per table (empty when there were none)."""
    held = count_run(client, database, run_id)
    if not held:
        return {}
    rows = ", ".join(f"{t} {n:,}" for t, n in sorted(held.items()))
    if not replace:
        raise UsageError(
            f"run id {run_id!r} already holds rows in database {database!r} ({rows}): a replay "
            "under it would leave them wherever it writes none, mixed with its own. Choose "
            f"another --run-id, or add --replace to delete run {run_id!r} first"
        )
    deleted = delete_run(client, database, run_id, cluster=cluster)
    log.info("replay.run_replaced", run_id=run_id, rows=sum(deleted.values()))
    return deleted


def free_run_id(client: Client, database: str, base: str) -> str:
    """``base`` (the default run id, ``replay-<start second>``), or ``base-2``, ``base-3``...:
    the first that holds no rows, so that replays started in the same second stay apart."""
    for n in range(1, 1_000):
        candidate = base if n == 1 else f"{base}-{n}"
        if not count_run(client, database, candidate):
            return candidate
    raise UsageError(f"run ids {base!r} to {base}-999 all hold rows: give one with --run-id")
