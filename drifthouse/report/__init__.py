"""``drifthouse report``: one self-contained HTML page of a run, from the store
(docs/report.md).

:mod:`~drifthouse.report.queries` reads the rows, :mod:`~drifthouse.report.analysis`
works out thresholds, the "what changed" table and the summary,
:mod:`~drifthouse.report.build` assembles a :class:`~drifthouse.report.data.Report`,
:mod:`~drifthouse.report.charts` draws its figures and :mod:`~drifthouse.report.page`
writes the page.
"""

from __future__ import annotations

import os
from pathlib import Path

from drifthouse.config import Config
from drifthouse.report.build import ReportRequest, build_report
from drifthouse.report.data import Report
from drifthouse.report.page import render
from drifthouse.sinks.sql_client import open_alone

__all__ = ["Report", "ReportRequest", "build_report", "render", "write_report"]


def write_report(config: Config, request: ReportRequest, out: Path) -> Report:
    """Read the run from the configured store and write the page to ``out``.

    Raises
    ------
    UsageError
        A run id, model or window the store or config does not have.
    StoreHeld
        The embedded store is held by another process (a worker).
    """
    client = open_alone(
        config,
        then="stop it first, or read the report from its web port (docs/report.md)",
        create_database=False,
    )
    try:
        report = build_report(client, config, request, store=config.masked_store_dsn())
    finally:
        client.close()
    # Written whole, then renamed: a reader never sees half a page.
    partial = out.with_name(out.name + ".partial")
    partial.write_text(render(report), encoding="utf-8")
    os.replace(partial, out)
    return report
