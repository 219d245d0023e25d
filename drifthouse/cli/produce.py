"""``drifthouse produce``: a simulated prediction stream to Kafka."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drifthouse.cli._common import ConfigOption, app, err

__all__ = ["produce"]


@app.command()
def produce(
    config: ConfigOption = Path("drifthouse.yaml"),
    rate: Annotated[
        float, typer.Option(help="Events per second (0: as fast as possible).")
    ] = 100.0,
    scenario: Annotated[
        str, typer.Option(help="The simulated scenario: demo (3 days) or quick (1 day).")
    ] = "demo",
    count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    days: Annotated[
        float | None,
        typer.Option(help="Simulated days, instead of the scenario's own (a longer stream)."),
    ] = None,
    batch: Annotated[
        int,
        typer.Option(
            help="Prediction events per message: 1 sends one event a message, more sends "
            "batched messages of one model (docs/events.md)."
        ),
    ] = 1,
    columnar: Annotated[
        bool, typer.Option(help="With --batch, send the batches in columns rather than rows.")
    ] = False,
) -> None:
    """Write a simulated prediction stream (and its labels) to Kafka, stamped with the current time."""
    from drifthouse.config import load_config
    from drifthouse.produce import run_produce

    run_produce(
        load_config(config),
        rate=rate,
        scenario=scenario,
        count=count,
        console=err,
        days=days,
        batch=batch,
        columnar=columnar,
    )
