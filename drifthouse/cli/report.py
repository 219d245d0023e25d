"""``drifthouse report``: one self-contained HTML page of a run (docs/report.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drifthouse.cli._common import ConfigOption, app, out

__all__ = ["report"]


@app.command()
def report(
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the HTML page.")],
    config: ConfigOption = Path("drifthouse.yaml"),
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="The run (default: the one written last).")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="Only this model (repeatable; default: all).")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Windows starting at or after (RFC 3339, ms).")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Windows starting before (RFC 3339, ms).")
    ] = None,
    window: Annotated[
        str | None, typer.Option(help="The window spec (default: the shortest tumbling one).")
    ] = None,
    feature: Annotated[
        list[str] | None, typer.Option(help="Also draw this feature's histogram (repeatable).")
    ] = None,
    heatmap: Annotated[
        str, typer.Option(help="Colour the drift heatmap by psi or p-value.")
    ] = "psi",
) -> None:
    """Write a self-contained HTML report of a run: drift, quality, serving, labels, alerts."""
    from drifthouse.app.replay import parse_time
    from drifthouse.config import load_config
    from drifthouse.report import ReportRequest, write_report

    request = ReportRequest(
        run_id=run_id,
        models=tuple(model or ()),
        start_ms=parse_time(from_, "--from"),
        end_ms=parse_time(to, "--to"),
        window=window,
        features=tuple(feature or ()),
        heatmap=heatmap,
    )
    written = write_report(load_config(config), request, out_file)
    size = out_file.stat().st_size
    out.print(
        f"report of run {written.run_id} ({', '.join(m.model for m in written.models) or 'no model'}"
        f", window {written.window}) written to {out_file} ({size / 1e6:.1f} MB)"
    )
