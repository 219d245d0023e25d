"""The ``drifthouse`` command line (CONTRACTS section 6).

Commands parse their arguments and call library functions; nothing else lives here.

Exit codes: 0 success, 2 usage or configuration errors, 1 any other failure. A
:class:`~drifthouse.errors.DrifthouseError` prints one red line (and, for a configuration
error, every problem as ``file:line path: message``) without a traceback, unless ``--debug``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drifthouse import __version__, logs
from drifthouse.config import Config, ConfigReport, check_config
from drifthouse.errors import ConfigError, DrifthouseError, UsageError

__all__ = ["app", "main"]

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


class _State:
    """Global options, read by :func:`main` when a command fails."""

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
    _State.debug = debug
    logs.configure(level="DEBUG" if debug else "INFO", json=log_json)


# -- check ---------------------------------------------------------------------------------------


@app.command()
def check(config: ConfigOption = Path("drifthouse.yaml")) -> None:
    """Validate the configuration and rules; say what is wrong and where."""
    report = check_config(config)
    _print_report(report)
    if not report.ok:
        raise typer.Exit(code=2)


def _print_report(report: ConfigReport) -> None:
    for where, message in report.errors:
        out.print(Text.assemble((f"{where}: ", "bold"), (message, "red")))
    for where, message in report.warnings:
        out.print(Text.assemble((f"{where}: ", "bold"), ("warning: ", "yellow"), message))
    if not report.ok:
        count = len(report.errors)
        out.print(
            Text(f"{count} problem{'s' if count != 1 else ''}: fix them and run check again", "red")
        )
        return
    if report.config is not None:
        out.print(_summary(report.config))
    out.print(Text("configuration OK", "green"))


def _summary(config: Config) -> Table:
    """Models, windows, rules and routes at a glance; no secrets (see Config.describe)."""
    info = config.describe()
    table = Table(title=str(info["source"] or "configuration"), show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("store", f"{info['store']} (database {info['database']})")
    table.add_row(
        "kafka", f"{info['kafka']['bootstrap']} topics {', '.join(info['kafka']['topics'])}"
    )
    table.add_row("windows", ", ".join(info["windows"]))
    models = []
    for name in info["models"]:
        reference = config.reference_path(name)
        state = (
            "no reference"
            if reference is None
            else "reference"
            if reference.is_file()
            else "reference missing"
        )
        models.append(f"{name} ({state})")
    table.add_row("models", ", ".join(models) or "none configured (every model gets the defaults)")
    table.add_row("rules", ", ".join(info["rules"]) or "none (the built-in defaults apply)")
    routes = [", ".join(route.receivers) for route in config.routes]
    table.add_row("routes", f"{len(routes)}: " + "; ".join(routes) if routes else "none")
    receivers = [f"{name} ({r['type']})" for name, r in info["receivers"].items()]
    table.add_row("receivers", ", ".join(receivers) or "none")
    return table


# -- version -------------------------------------------------------------------------------------


@app.command()
def version() -> None:
    """Print the drifthouse version."""
    out.print(f"drifthouse {__version__}")


# -- commands wired by the pipeline (CONTRACTS section 6) ------------------------------------------
# Each command below loads the config with drifthouse.config.load_config (never in the library)
# and calls one library function. Placeholders, in this order:
#
# demo      drifthouse demo [--store DSN]
#           the whole pipeline on synthetic events with drift, errors and latency regressions.
# profile   drifthouse profile INPUT --model M [--model-version V] [--out FILE]
#           a reference profile from CSV, Parquet, JSONL or a Kafka time range.
# run       drifthouse run -c drifthouse.yaml
#           the Kafka worker.
# replay    drifthouse replay -c drifthouse.yaml --source kafka:TOPIC|file:PATH
#           [--labels kafka:TOPIC|file:PATH] [--from T] [--to T] [--run-id ID] [--notify]
#           history through the same pipeline, with a progress bar.
# sql       drifthouse sql "SELECT ..."   queries the configured store.
# migrate   drifthouse migrate -c drifthouse.yaml   creates or upgrades the ClickHouse tables.
# silence   drifthouse silence ...   mutes alerts matching labels for a while.
# produce   drifthouse produce ...   sends events (a file or synthetic) to a topic.


# -- entry point -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code (the ``drifthouse`` entry point).

    ``argv`` defaults to ``sys.argv[1:]``.
    """
    _State.debug = False
    try:
        app(args=list(argv) if argv is not None else None, prog_name="drifthouse")
    except SystemExit as exc:
        return _exit_code(exc.code)
    except DrifthouseError as exc:
        if _State.debug:
            raise
        _print_error(exc)
        return 2 if isinstance(exc, ConfigError | UsageError) else 1
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    err.print(str(code))
    return 1


def _print_error(exc: DrifthouseError) -> None:
    err.print(Text(f"error: {exc}", "bold red"))
    if isinstance(exc, ConfigError):
        for where, message in exc.problems:
            err.print(Text.assemble((f"{where}: ", "bold"), (message, "red")))
    err.print(Text("run with --debug for details", "dim"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
