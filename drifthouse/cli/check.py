"""``drifthouse check`` and ``drifthouse version``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from drifthouse import __version__, logs
from drifthouse.cli._common import ConfigOption, app, out
from drifthouse.durations import format_duration

if TYPE_CHECKING:
    from rich.table import Table

    from drifthouse.config import Config, ConfigReport

__all__ = ["check", "version"]


@app.command()
def check(config: ConfigOption = Path("drifthouse.yaml")) -> None:
    """Validate the configuration and rules; say what is wrong and where."""
    report = check_config(config)
    _print_report(report)
    if not report.ok:
        raise typer.Exit(code=2)


def check_config(path: Path) -> ConfigReport:
    """:func:`drifthouse.config.check_config`, imported when the command runs, not at start-up."""
    from drifthouse.config import check_config as check_file

    return check_file(path)


def _print_report(report: ConfigReport) -> None:
    scrub = logs.scrub  # no piece of a secret of the config, whatever a message quotes
    for where, message in report.errors:
        out.print(Text.assemble((f"{scrub(where)}: ", "bold"), (scrub(message), "red")))
    for where, message in report.warnings:
        out.print(
            Text.assemble((f"{scrub(where)}: ", "bold"), ("warning: ", "yellow"), scrub(message))
        )
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
    from rich.markup import escape
    from rich.table import Table

    info = config.describe()
    table = Table(title=escape(str(info["source"] or "configuration")), show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("store", escape(f"{info['store']} (database {info['database']})"))
    table.add_row(
        "kafka", escape(f"{info['kafka']['bootstrap']} topics {', '.join(info['kafka']['topics'])}")
    )
    table.add_row("windows", escape(", ".join(info["windows"])))
    models = []
    for name in info["models"]:
        reference = config.reference_path(name)
        span = config.auto_reference_span(name)
        state = (
            f"automatic reference, {format_duration(span)}"
            if span is not None
            else "no reference"
            if reference is None
            else "reference"
            if reference.is_file()
            else "reference missing"
        )
        trailing = config.model(name).trailing
        if trailing is not None:
            state += f", trailing baseline {format_duration(trailing.trailing)}"
        models.append(f"{name} ({state})")
    table.add_row(
        "models", escape(", ".join(models)) or "none configured (every model gets the defaults)"
    )
    auto = [name for name in info["models"] if config.auto_reference_span(name) is not None]
    if auto:
        table.add_row("on automatic reference", escape(", ".join(auto)))
    metrics = config.metrics
    table.add_row(
        "other models",
        "automatic reference from their first "
        f"{format_duration(metrics.auto_reference_span)} of traffic"
        if metrics.default_reference == "auto"
        else "serving metrics only (metrics.default_reference: none)",
    )
    table.add_row("rules", escape(", ".join(info["rules"])) or "none (rules: [])")
    routes = [", ".join(route.receivers) for route in config.routes]
    table.add_row("routes", escape(f"{len(routes)}: " + "; ".join(routes)) if routes else "none")
    receivers = [f"{name} ({r['type']})" for name, r in info["receivers"].items()]
    table.add_row("receivers", escape(", ".join(receivers)) or "none")
    return table


@app.command()
def version() -> None:
    """Print the drifthouse version."""
    out.print(f"drifthouse {__version__}")
