"""``drifthouse runs`` and ``drifthouse runs delete``: the run ids of the store, and removing one.

The store-side queries are :mod:`drifthouse.sinks.runs`; what the commands promise is in
docs/cli.md ("drifthouse runs").
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drifthouse.cli._common import ConfigOption, app, out
from drifthouse.errors import StoreHeld, UsageError

if TYPE_CHECKING:
    from drifthouse.config import Config
    from drifthouse.sinks.runs import Run
    from drifthouse.sinks.store import Client

__all__ = ["runs_delete", "runs_list"]

_FORMATS = ("table", "json")

runs_app = typer.Typer(
    help="The run ids in the store (live workers, replays, the demo); delete one run's rows.",
    invoke_without_command=True,
)
app.add_typer(runs_app, name="runs")


def _open(cfg: Config) -> Client:
    """The store, opened by this process; a clear error when a worker holds the embedded one."""
    from drifthouse.sinks.sql_client import open_alone

    return open_alone(
        cfg, then="`drifthouse runs delete` needs the store to itself: stop that process first"
    )


def _list(cfg: Config) -> list[Run]:
    """The runs, read by this process, or asked of the worker that holds the embedded store."""
    from drifthouse.sinks.runs import list_runs, runs_from_rows, runs_select
    from drifthouse.sinks.sql_client import ask

    database = cfg.store.database
    try:
        client = _open(cfg)
    except StoreHeld:
        # The worker migrated its store at start: every run table is there.
        sql, params = runs_select(database)
        return runs_from_rows(ask(cfg, sql, params)[1])
    try:
        return list_runs(client, database)
    finally:
        client.close()


def _when_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when_s(s: int) -> str:
    return _when_ms(s * 1000)


def _rows_text(rows: Mapping[str, int]) -> str:
    return ", ".join(f"{table} {n:,}" for table, n in rows.items())


def _as_json(run: Run) -> dict[str, object]:
    return {
        "run_id": run.run_id,
        "kind": run.kind,
        "first": _when_ms(run.first_ms),
        "last": _when_ms(run.last_ms),
        "models": list(run.models),
        "rows": dict(run.rows),
        "written_first": _when_s(run.written_first_s),
        "written_last": _when_s(run.written_last_s),
    }


def _counts_grid(rows: Mapping[str, int]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column()
    grid.add_column(justify="right")
    for table, n in rows.items():
        grid.add_row(table, f"{n:,}")
    if len(rows) > 1:
        grid.add_row(Text("total", "bold"), Text(f"{sum(rows.values()):,}", "bold"))
    return grid


def _table(runs: list[Run]) -> Table:
    from drifthouse.sql_output import visible

    table = Table("run id", "kind", "first", "last", "models", "rows", "written")
    for run in runs:
        written = _when_s(run.written_first_s)
        if run.written_last_s != run.written_first_s:
            written += f"\nto {_when_s(run.written_last_s)}"
        table.add_row(
            Text(visible(run.run_id)),
            run.kind,
            _when_ms(run.first_ms),
            _when_ms(run.last_ms),
            Text(visible(", ".join(run.models))),
            _counts_grid(run.rows),
            written,
        )
    return table


@runs_app.callback()
def runs_list(
    ctx: typer.Context,
    config: ConfigOption = Path("drifthouse.yaml"),
    fmt: Annotated[str, typer.Option("--format", help="Output: table or json.")] = "table",
) -> None:
    """List the run ids in the store: span, models, rows per table, when written."""
    if ctx.invoked_subcommand is not None:
        return
    from drifthouse.config import load_config

    if fmt not in _FORMATS:
        raise UsageError(f"--format must be one of {', '.join(_FORMATS)} (got {fmt!r})")
    cfg = load_config(config)
    runs = _list(cfg)
    if fmt == "json":
        text = json.dumps([_as_json(run) for run in runs], ensure_ascii=False, indent=1)
        # json escapes C0; DEL and C1 are escaped here so no raw control reaches the terminal.
        out.file.write(re.sub(r"[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
        return
    if not runs:
        out.print(Text(f"no runs in database {cfg.store.database!r}"))
        return
    _print_wide(_table(runs), Text(f"{len(runs)} run{'s' if len(runs) != 1 else ''}", "dim"))


def _print_wide(table: Table, footer: Text) -> None:
    """On a terminal as it fits; elsewhere as wide as the values, so nothing is cut."""
    if out.is_terminal:
        out.print(table)
        out.print(footer)
        return
    wide = Console(file=out.file, width=10_000, highlight=False, color_system=None)
    width = max(80, wide.measure(table).maximum)
    wide = Console(file=out.file, width=width, highlight=False, color_system=None)
    wide.print(table)
    wide.print(footer)


@runs_app.command("delete")
def runs_delete(
    run_id: Annotated[str, typer.Argument(help="The run id (see `drifthouse runs`).")],
    config: ConfigOption = Path("drifthouse.yaml"),
    yes: Annotated[bool, typer.Option("--yes", help="Delete; without it, only say what.")] = False,
    live: Annotated[
        bool, typer.Option("--live", help="Allow deleting the live workers' run id 'live'.")
    ] = False,
) -> None:
    """Delete one run's rows from every table with a run_id column."""
    from drifthouse.config import load_config
    from drifthouse.sinks.runs import LIVE, REFERENCE, count_run, delete_run
    from drifthouse.sql_output import visible

    if run_id == REFERENCE:
        raise UsageError(
            "run id 'reference' holds the reference histograms of every model (sketches), "
            "written again by every replay and worker start; it is not a run to delete"
        )
    if run_id == LIVE and not live:
        raise UsageError(
            "run id 'live' holds the live workers' rows; stop every worker first (they keep "
            "writing under it), then add --live to delete them; nothing deleted"
        )
    cfg = load_config(config)
    client = _open(cfg)
    database = cfg.store.database
    try:
        if not yes:
            counts = count_run(client, database, run_id)
            if counts:
                shown = visible(run_id)
                out.print(Text(f"run {shown} has {_total(counts)} rows: {_rows_text(counts)}"))
                again = shlex.quote(run_id) if run_id.isprintable() else "ID"
                raise UsageError(
                    f"nothing deleted: add --yes to delete these rows of run {run_id!r} "
                    f"(drifthouse runs delete {again} -c {shlex.quote(str(config))} --yes)"
                )
        deleted = delete_run(client, database, run_id, cluster=cfg.store.cluster)
    finally:
        client.close()
    said = f"deleted run {visible(run_id)}: {_total(deleted)} rows ({_rows_text(deleted)})"
    out.print(Text(said))


def _total(counts: Mapping[str, int]) -> str:
    return f"{sum(counts.values()):,}"
