"""``drifthouse sql``'s way to the store: open it, or ask the worker that holds it.

The embedded engine admits one process per data folder. :func:`ask` opens the store itself
(the engine's lock error, printed on file descriptor 2 before it raises, is kept off the
terminal); when another process holds the folder, it asks that worker's SQL endpoint
(``store.serve_port``) with the token the worker wrote. Either way the statement goes through
:func:`~drifthouse.sinks.sql_guard.run_select`: one SELECT over the drifthouse tables,
read-only, within the ``store.serve_*`` limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drifthouse.errors import DrifthouseError, StoreHeld, StoreUnavailable
from drifthouse.sinks.sql_endpoint import (
    held_by_another_process,
    query_readonly,
    quiet_stderr,
    read_token,
)
from drifthouse.sinks.sql_guard import Limits, run_select
from drifthouse.sinks.store import Client, embedded_folder, open_store

if TYPE_CHECKING:
    from drifthouse.config import Config

__all__ = ["ask", "open_alone"]


def open_alone(config: Config, *, then: str, create_database: bool = True) -> Client:
    """The configured store, opened by this process; :class:`StoreHeld` (its message ending with
    ``then``, what to do instead) when another process holds the embedded one."""
    dsn = config.store_dsn()
    try:
        with quiet_stderr():
            return open_store(dsn, config.store.database, create_database=create_database)
    except DrifthouseError as exc:
        folder = embedded_folder(dsn)
        if folder is not None and held_by_another_process(Path(folder)):
            raise StoreHeld(
                f"another process (a worker?) holds the embedded store at {folder}; {then}"
            ) from exc
        raise


def ask(
    config: Config, sql: str, parameters: Mapping[str, Any] | None = None
) -> tuple[list[str], list[Sequence[Any]]]:
    """Columns and rows of one SELECT on the configured store (directly or through the worker)."""
    dsn = config.store_dsn()
    database = config.store.database
    limits = Limits.of(config.store)
    path = embedded_folder(dsn)
    if path is not None:
        folder = Path(path)
        try:
            with quiet_stderr() as printed:
                client = open_store(dsn, database)
        except DrifthouseError as exc:
            if held_by_another_process(folder):
                return _ask_worker(config, folder, sql, parameters, limits)
            # The engine's message: without its stack trace, with what it printed (if anything).
            text = str(exc).split(", Stack trace", 1)[0].split("\nStack trace", 1)[0]
            said = " ".join(printed).strip().split("\n", 1)[0]
            raise type(exc)(f"{text} (the engine said: {said})" if said else text) from exc
    else:
        client = open_store(dsn, database)
    try:
        columns, rows = run_select(client, sql, parameters, limits=limits)
    finally:
        client.close()
    return columns, list(rows)


def _ask_worker(
    config: Config,
    folder: Path,
    sql: str,
    parameters: Mapping[str, Any] | None,
    limits: Limits,
) -> tuple[list[str], list[Sequence[Any]]]:
    port = config.store.serve_port
    if port is None:
        raise StoreUnavailable(
            f"another process (a worker?) holds the embedded store at {folder}; start the worker "
            "with store.serve_port set, and `drifthouse sql` asks it"
        )
    token = read_token(config.sql_token_path())
    columns, rows = query_readonly(
        port, sql, parameters, token=token, timeout=limits.timeout_s + 30
    )
    return columns, list(rows)
