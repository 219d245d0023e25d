"""What every command of the ``drifthouse`` command line shares: the app, the consoles, the
global options and the ``--config`` option."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from drifthouse import logs
from drifthouse.durations import format_duration

if TYPE_CHECKING:
    # A command imports what it runs when it runs: `drifthouse --help` loads none of it.
    from drifthouse.config import Config

__all__ = ["ConfigOption", "State", "app", "auto_line", "err", "out", "skip_pandas_probe"]

app = typer.Typer(
    name="drifthouse",
    help="Streaming drift and data-quality monitor for ML models in production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


class State:
    """Global options, read by :func:`drifthouse.cli.main` when a command fails."""

    debug = False


ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="The configuration file.",
        envvar="DRIFTHOUSE_CONFIG",
        dir_okay=False,
    ),
]


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Debug logs, and a traceback on errors.")
    ] = False,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Write logs (stderr) as JSON lines.")
    ] = False,
) -> None:
    """Streaming drift and data-quality monitor for ML models in production."""
    State.debug = debug
    logs.configure(level="DEBUG" if debug else "INFO", json=log_json)


def auto_line(config: Config) -> str:
    """Which models run on an automatic reference (listed ones by name, then the rest)."""
    listed = [
        f"{name} ({format_duration(span)})"
        for name in sorted(config.models)
        if (span := config.auto_reference_span(name)) is not None
    ]
    metrics = config.metrics
    rest = (
        f"models not listed: automatic reference ({format_duration(metrics.auto_reference_span)})"
        if metrics.default_reference == "auto"
        else "models not listed: serving metrics only"
    )
    return (f"automatic reference: {', '.join(listed)}; " if listed else "") + rest


def skip_pandas_probe() -> None:
    """Tell clickhouse-connect that this process has no pandas, unless pandas is loaded already.

    clickhouse-connect imports pandas (0.1-0.3 s here) at the first insert of a process, only to
    ask whether the rows are a DataFrame; the command line hands it lists, never a DataFrame
    (nor any other pandas object), so its answer cannot change. A command that inserts calls
    this before it opens the store; a program that uses drifthouse as a library, not through
    :func:`drifthouse.cli.main`, keeps clickhouse-connect's own pandas detection.
    """
    if "pandas" in sys.modules:
        return
    from clickhouse_connect.driver import options

    options.pd = None  # what clickhouse-connect itself sets when pandas is not installed
    options.pd_time_test = None
