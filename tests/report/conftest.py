"""The report tests' one real run: a short demo (1.5 simulated days at a third of the demo's
rate: the reference day, then every fault) into the session's embedded store, which ends by
writing its report."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from drifthouse.config import load_config
from drifthouse.demo import DemoSummary, run_demo
from drifthouse.report import ReportRequest, build_report
from drifthouse.report.data import Report
from drifthouse.sinks import open_store

DAYS = 1.5
#: Predictions a minute per model: a third of the demo's, the same faults (a faster run).
RATE = 10
#: The faults that change a feature's distribution (docs/demo.md): what PSI must catch.
DRIFT_FAULTS = ("gradual drift", "sudden drift", "new category")


@dataclass(frozen=True)
class DemoRun:
    summary: DemoSummary
    printed: str
    report: Path

    @property
    def drifted(self) -> dict[str, set[str]]:
        """Per model, the features the demo drifts."""
        out: dict[str, set[str]] = {}
        for fault in self.summary.scenario.faults:
            if fault.name in DRIFT_FAULTS and fault.feature:
                out.setdefault(fault.model, set()).add(fault.feature)
        return out


@pytest.fixture(scope="session")
def demo_run(ch_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    folder = tmp_path_factory.mktemp("report-demo")
    here = os.getcwd()
    os.chdir(folder)
    out = io.StringIO()
    try:
        summary = run_demo(
            store=ch_dsn,
            days=DAYS,
            rate_per_min=RATE,
            console=Console(file=out, width=200, soft_wrap=True),
        )
    finally:
        os.chdir(here)
    return DemoRun(summary, out.getvalue(), folder / "demo-data" / "report.html")


@pytest.fixture(scope="session")
def built(demo_run: DemoRun) -> Report:
    """The demo run's report, as :func:`drifthouse.report.build_report` reads it."""
    config = load_config(demo_run.summary.config_path)
    client = open_store(config.store_dsn(), config.store.database)
    try:
        return build_report(client, config, ReportRequest(run_id="demo"))
    finally:
        client.close()
