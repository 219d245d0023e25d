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
from drifthouse.errors import DrifthouseError, StoreUnavailable
from drifthouse.report.build import ReportRequest, build_report
from drifthouse.report.data import Report
from drifthouse.report.page import render
from drifthouse.sinks.sql_endpoint import held_by_another_process, quiet_stderr
from drifthouse.sinks.store import embedded_folder, open_store

__all__ = ["Report", "ReportRequest", "build_report", "render", "write_report"]


def write_report(config: Config, request: ReportRequest, out: Path) -> Report:
    """Read the run from the configured store and write the page to ``out``.

    Raises
    ------
    UsageError
        A run id, model or window the store or config does not have.
    StoreUnavailable
        The embedded store is held by another process (a worker).
    """
    dsn = config.store_dsn()
    folder = embedded_folder(dsn)
    try:
        with quiet_stderr():
            client = open_store(dsn, config.store.database, create_database=False)
    except DrifthouseError as exc:
        if folder is not None and held_by_another_process(Path(folder)):
            raise StoreUnavailable(
                f"another process (a worker?) holds the embedded store at {folder}; "
                "stop it first, or read the report from its web port (docs/report.md)"
            ) from exc
        raise
    try:
        report = build_report(client, config, request, store=config.masked_store_dsn())
    finally:
        client.close()
    # Written whole, then renamed: a reader never sees half a page.
    partial = out.with_name(out.name + ".partial")
    partial.write_text(render(report), encoding="utf-8")
    os.replace(partial, out)
    return report
