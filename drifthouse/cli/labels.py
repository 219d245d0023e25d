"""``drifthouse labels join``: join labels later than the stream's horizon in ClickHouse and
rewrite the label metrics of their old windows (docs/model-performance.md, "Labels later than
the horizon")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from drifthouse.cli._common import ConfigOption, app, out
from drifthouse.errors import UsageError

__all__ = ["labels_join", "parse_since"]

labels_app = typer.Typer(help="Labels later than the stream's horizon.", no_args_is_help=True)
app.add_typer(labels_app, name="labels")


def parse_since(value: str, now_ms: int) -> int:
    """``--since`` as epoch seconds: ``all``, a duration back from now (``7d``), or a time
    (``2026-01-01``, ``2026-01-01T06:00:00Z``, epoch milliseconds)."""
    from drifthouse.durations import parse_duration
    from drifthouse.errors import DecodeError
    from drifthouse.events.timestamps import parse_ts

    if value == "all":
        return 0
    try:
        return (now_ms - parse_duration(value)) // 1000
    except (ValueError, TypeError):
        pass
    if len(value) == 10 and value[4:5] == "-" and value[7:8] == "-":
        value += "T00:00:00Z"  # a date: its start, UTC
    try:
        return parse_ts(int(value) if value.isdigit() else value) // 1000
    except (ValueError, TypeError, DecodeError) as exc:
        raise UsageError(
            f"--since must be 'all', a duration such as 7d, or a time such as 2026-01-01 "
            f"(got {value!r})"
        ) from exc


@labels_app.command("join")
def labels_join(
    config: ConfigOption = Path("drifthouse.yaml"),
    since: Annotated[
        str,
        typer.Option(
            help="Labels and predictions stored since: a duration back from now (7d), a time "
            "(2026-01-01), or 'all'. Reach back to the previous run's start."
        ),
    ] = "2d",
    run_id: Annotated[
        str, typer.Option("--run-id", help="The run whose windows to rewrite.")
    ] = "live",
) -> None:
    """Join late labels in ClickHouse and rewrite the label metrics of their windows."""
    from drifthouse.app.assembly import load_profiles
    from drifthouse.config import load_config
    from drifthouse.sinks import ClickHouseSink, open_store
    from drifthouse.stream.labels.late import join_late_labels

    cfg = load_config(config)
    since_s = parse_since(since, int(time.time() * 1000))
    client = open_store(cfg.store_dsn(), cfg.store.database)
    try:
        sink = ClickHouseSink(client, database=cfg.store.database, batch_rows=cfg.store.batch_rows)
        report = join_late_labels(
            client, cfg.store.database, cfg, load_profiles(cfg), sink, since_s=since_s,
            run_id=run_id,
        )  # fmt: skip
        sink.close()
    finally:
        client.close()
    out.print(
        f"late labels: {report.pairs:,} pairs joined in ClickHouse (models: {report.models}); "
        f"{report.windows:,} windows rewritten ({report.rows:,} rows); "
        f"{report.waiting:,} windows wait for the stream to be done with them"
    )
