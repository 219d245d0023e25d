"""The worker's ``/report``: the report of the last hours of the live run, on the SQL
endpoint's port and behind its rules (local only, the token; docs/report.md)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from drifthouse.config import Config
from drifthouse.errors import UsageError
from drifthouse.report.build import ReportRequest, build_report
from drifthouse.report.page import render
from drifthouse.sinks.store import Client

__all__ = ["DEFAULT_HOURS", "MAX_HOURS", "report_page"]

DEFAULT_HOURS = 24.0
#: A year and a bit: the report reads every window of the span.
MAX_HOURS = 24.0 * 400


def _hours(text: str | None) -> float:
    if text is None:
        return DEFAULT_HOURS
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not 0 < hours <= MAX_HOURS:
        raise UsageError(f"hours must be a number in (0, {MAX_HOURS:g}] (got {text!r})")
    return hours


def report_page(
    config: Config, *, run_id: str = "live", now_ms: Callable[[], int] | None = None
) -> Callable[[Client, Mapping[str, str]], bytes]:
    """``GET /report?hours=N&model=M&run_id=ID&heatmap=K``: windows that started in the last
    ``N`` hours (24 by default) of run ``run_id`` (``live``), every model or ``M``, the heatmap
    coloured by ``K`` (``psi`` or ``p-value``)."""
    clock = now_ms or (lambda: int(time.time() * 1000))

    def page(client: Client, query: Mapping[str, str]) -> bytes:
        hours = _hours(query.get("hours"))
        model = query.get("model")
        request = ReportRequest(
            run_id=query.get("run_id", run_id),
            models=(model,) if model else (),
            start_ms=clock() - round(hours * 3_600_000),
            heatmap=query.get("heatmap", "psi"),
        )
        report = build_report(client, config, request, store=config.masked_store_dsn())
        return render(report).encode()

    return page
