"""``drifthouse demo``: the whole pipeline on one machine, no services needed.

A simulated prediction stream with injected drift, errors and latency regressions runs through
the worker's pipeline into the embedded ClickHouse; alerts are printed and stored; the demo ends
with which alert caught which fault and SQL to try. See ``docs/demo.md``.
"""

from __future__ import annotations

from drifthouse.demo.findings import Finding
from drifthouse.demo.report import DemoQuery
from drifthouse.demo.run import DemoSummary, run_demo

__all__ = ["DemoQuery", "DemoSummary", "Finding", "run_demo"]
