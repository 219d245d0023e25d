"""``drifthouse sql``, ``drifthouse migrate`` and ``drifthouse silence``: the store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from drifthouse.cli._common import ConfigOption, app, out, skip_pandas_probe
from drifthouse.errors import UsageError

if TYPE_CHECKING:
    from drifthouse.alerts.silences import ClickHouseSilenceStore

__all__ = ["migrate", "silence_add", "silence_expire", "silence_list", "sql"]


@app.command()
def sql(
    query: Annotated[
        str | None,
        typer.Argument(help="One SELECT over the drifthouse tables (or give --recipe)."),
    ] = None,
    config: ConfigOption = Path("drifthouse.yaml"),
    recipe: Annotated[
        str | None,
        typer.Option(help="Run a named recipe of sinks/sql/queries.sql instead of QUERY."),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Query parameter name=value (repeatable).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="Output: table, csv or json.")] = "table",
) -> None:
    """Query the configured store, read-only: one SELECT or a named recipe."""
    from drifthouse.config import load_config
    from drifthouse.sinks.query import recipe as find_recipe
    from drifthouse.sinks.sql_client import ask
    from drifthouse.sql_output import FORMATS, print_result

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if (query is None) == (recipe is None):
        raise UsageError("give either a SELECT statement or --recipe NAME, not both or neither")
    params: dict[str, str] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--param must be name=value (got {item!r})")
        params[name] = value
    cfg = load_config(config)
    if recipe is not None:
        chosen = find_recipe(recipe)
        query, bound = chosen.sql, chosen.bind(params)
    else:
        bound = dict(params)
    assert query is not None
    columns, rows = ask(cfg, query, bound)
    print_result(columns, rows, fmt, out)


@app.command()
def migrate(config: ConfigOption = Path("drifthouse.yaml")) -> None:
    """Create or upgrade the ClickHouse tables, and create again any that is missing."""
    from drifthouse.config import load_config
    from drifthouse.sinks import open_store
    from drifthouse.sinks.schema import migrate_report

    cfg = load_config(config)
    client = open_store(cfg.store_dsn(), cfg.store.database)
    try:
        report = migrate_report(
            client, cfg.store.database, cfg.store.ttl_days, cluster=cfg.store.cluster
        )
    finally:
        client.close()
    done = []
    if report.applied:
        done.append("applied " + ", ".join(map(str, report.applied)))
    if report.recreated:
        done.append("created again missing tables " + ", ".join(report.recreated))
    out.print(Text(f"schema up to date ({'; '.join(done) or 'nothing to apply'})"))


silence_app = typer.Typer(help="Mute alerts matching labels for a while.", no_args_is_help=True)
app.add_typer(silence_app, name="silence")


def _silences(config: Path) -> ClickHouseSilenceStore:
    from drifthouse.alerts.silences import ClickHouseSilenceStore
    from drifthouse.config import load_config
    from drifthouse.sinks import open_store

    cfg = load_config(config)
    return ClickHouseSilenceStore(
        open_store(cfg.store_dsn(), cfg.store.database),
        cfg.store.database,
        cluster=cfg.store.cluster,
    )


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@silence_app.command("add")
def silence_add(
    matchers: Annotated[
        list[str], typer.Argument(help="label=value or label=glob, e.g. model=fraud")
    ],
    duration: Annotated[str, typer.Option(help="How long, e.g. 2h.")],
    author: Annotated[str, typer.Option(help="Who mutes.")],
    reason: Annotated[str, typer.Option(help="Why, for the next on-call.")],
    config: ConfigOption = Path("drifthouse.yaml"),
) -> None:
    """Add a silence."""
    from drifthouse.alerts.silences import add_silence
    from drifthouse.config import parse_duration

    try:
        duration_ms = parse_duration(duration)
    except ValueError as exc:
        raise UsageError(f"--duration: {exc}") from exc
    skip_pandas_probe()
    silence = add_silence(
        _silences(config),
        matchers,
        author=author,
        reason=reason,
        now_ms=_now_ms(),
        duration_ms=duration_ms,
    )
    out.print(f"silence {silence.id} added until {silence.ends_at}")


@silence_app.command("list")
def silence_list(
    config: ConfigOption = Path("drifthouse.yaml"),
    all_: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
) -> None:
    """List silences."""
    from datetime import UTC, datetime

    from drifthouse.alerts.silences import list_silences

    table = Table("id", "matchers", "until", "author", "reason")
    for s in list_silences(_silences(config), now_ms=_now_ms(), include_expired=all_):
        until = datetime.fromtimestamp(s.ends_at / 1000, tz=UTC).isoformat(timespec="seconds")
        table.add_row(
            Text(s.id),
            Text(", ".join(f"{k}={v}" for k, v in s.matchers.items())),
            until,
            Text(s.created_by),
            Text(s.reason),
        )
    out.print(table)


@silence_app.command("expire")
def silence_expire(
    silence_id: Annotated[str, typer.Argument(help="The silence id (see silence list).")],
    config: ConfigOption = Path("drifthouse.yaml"),
) -> None:
    """End a silence now."""
    from drifthouse.alerts.silences import expire_silence

    expire_silence(_silences(config), silence_id, now_ms=_now_ms())
    out.print(Text(f"silence {silence_id} expired"))
