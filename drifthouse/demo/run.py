"""``drifthouse demo``: a simulated stream with injected faults through the worker's pipeline.

The steps, in order:

1. simulate :meth:`Scenario.demo` (a fraud classifier and an ETA regressor, faults after day one);
2. build each model's reference profile from its clean first day, as ``drifthouse profile`` does;
3. write the demo's configuration (``demo-data/drifthouse.yaml``: windows ``1h`` and
   ``15m/5m``, the shipped rules plus two data-quality rules, critical alerts to ``pagerduty``
   and ``slack``, warnings to ``slack``);
4. run every prediction through the same :class:`~drifthouse.app.pipeline.Pipeline` and alert
   stage as ``drifthouse replay``, into the store (embedded ClickHouse unless ``--store``);
5. print which alert caught each fault and how soon, the alerts, and SQL to try; the rows
   counted are those the store acknowledged, and the demo fails (exit code 1) naming the table,
   rows and reason when the store refused rows or some are still in the spool;
6. write the HTML report of the run, ``demo-data/report.html`` (docs/report.md), and print
   its path.

Everything is stored under run id ``demo``. A second run replaces the first: the demo's own
embedded store is recreated; on a ``--store`` server, the rows of run ``demo`` are deleted first.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from drifthouse.app.assembly import open_sink, replay_alerts
from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.demo.findings import Finding, find
from drifthouse.demo.report import DemoQuery, alert_line, demo_queries, print_report, when
from drifthouse.demo.setup import RUN_ID, build_profiles, prepare_folder, write_config
from drifthouse.detectors.reference import Profile
from drifthouse.errors import UsageError
from drifthouse.report import ReportRequest, write_report
from drifthouse.rows import AlertRow, Row
from drifthouse.simulate import Record, Scenario, simulate
from drifthouse.sinks import store_reference
from drifthouse.sinks.base import Sink, WriteReport, finish
from drifthouse.sinks.store import call
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message

__all__ = ["DEMO_FOLDER", "LABEL_DELAY_MIN", "SEED", "DemoSummary", "run_demo", "split_reference"]

DEMO_FOLDER = "demo-data"
SEED = 7
#: Labels come in 5 minutes to 2 hours after their prediction.
LABEL_DELAY_MIN = (5, 120)
BATCH = 2_048


@dataclass
class DemoSummary:
    """What a demo run did and found."""

    run_id: str
    folder: Path
    config_path: Path
    store: str
    scenario: Scenario
    events: int = 0
    windows: int = 0
    rows: int = 0
    seconds: float = 0.0
    reached_ms: int | None = None
    findings: list[Finding] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)
    queries: list[DemoQuery] = field(default_factory=list)
    written: WriteReport | None = None
    report_path: Path | None = None

    def finding(self, name: str) -> Finding:
        """The finding of the fault called ``name``."""
        return next(f for f in self.findings if f.fault.name == name)


class _AlertTap:
    """The alert stage's sink: keeps and prints each alert row, then stores it."""

    def __init__(self, sink: Sink, console: Console) -> None:
        self.sink = sink
        self.console = console
        self.alerts: list[AlertRow] = []

    def write(self, rows: Iterable[Row]) -> None:
        rows = list(rows)
        for row in rows:
            if isinstance(row, AlertRow):
                self.alerts.append(row)
                self.console.print(alert_line(row))
        self.sink.write(rows)

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()

    @property
    def pressure(self) -> float:
        return self.sink.pressure


def run_demo(
    *,
    store: str | None,
    days: float = 3.0,
    minutes: float | None = None,
    console: Console,
    rate_per_min: int = 30,
) -> DemoSummary:
    """Run the demo (see the module docstring); ``minutes`` bounds the wall time of step 4;
    ``rate_per_min`` is each model's predictions a minute (tests run a smaller demo)."""
    started = time.monotonic()
    try:
        scenario = Scenario.demo(days=days, rate_per_min=rate_per_min)
    except ValueError as exc:
        raise UsageError(
            f"--days must be more than 1: the first day is the reference ({exc})"
        ) from exc
    if minutes is not None and minutes <= 0:
        raise UsageError(f"--minutes must be positive (got {minutes})")
    folder = Path(DEMO_FOLDER).resolve()
    prepare_folder(folder, store)
    config, config_path, note = write_config(folder, store, scenario.models)
    summary = DemoSummary(RUN_ID, folder, config_path, config.masked_store_dsn(), scenario)
    console.print(
        f"[bold]drifthouse demo[/]: {days:g} simulated days of models "
        f"{' and '.join(scenario.models)}, {len(scenario.faults)} injected faults, "
        f"store {summary.store}",
        highlight=False,
    )
    records = simulate(scenario, seed=SEED, label_delay_min=LABEL_DELAY_MIN)
    with console.status("simulating the clean first day and building reference profiles"):
        reference, labels, ordered, rest = split_reference(
            records, scenario.reference_end_ms, LABEL_DELAY_MIN[1] * 60_000
        )
        created = when(scenario.reference_end_ms).replace(" ", "T") + ":00Z"
        profiles = build_profiles(folder, reference, config, created, labels=labels)
    console.print(
        f"reference profiles from the first {scenario.reference_hours:g} h: "
        + ", ".join(f"{m} ({len(r):,} events)" for m, r in reference.items()),
        highlight=False,
    )
    deadline = None if minutes is None else started + minutes * 60
    stream = itertools.chain(ordered, rest)
    _run_pipeline(
        summary, config, profiles, stream, store=store, deadline=deadline, console=console
    )
    windows = {w.size: (w.name, w.pane_ms) for w in config.windows}
    summary.findings = [
        find(f, summary.alerts, windows=windows, reached_ms=summary.reached_ms)
        for f in scenario.faults
    ]
    summary.queries = demo_queries(config_path, RUN_ID)
    summary.seconds = time.monotonic() - started
    _print_summary(summary, windows, note, console)
    assert summary.written is not None
    summary.written.check()  # rows refused or still spooled: say which and why, and fail
    summary.report_path = folder / "report.html"
    write_report(config, ReportRequest(run_id=RUN_ID), summary.report_path)
    size = summary.report_path.stat().st_size
    console.print()
    console.print(
        f"[bold]report[/]: {summary.report_path} ({size / 1e6:.1f} MB; open it in a browser, "
        "it needs no network)",
        highlight=False,
    )
    return summary


def _run_pipeline(
    summary: DemoSummary,
    config: Config,
    profiles: Mapping[str, Profile],
    records: Iterator[Record],
    *,
    store: str | None,
    deadline: float | None,
    console: Console,
) -> None:
    """Step 4: every prediction through the pipeline and the alert stage, into the store;
    the totals, alerts and the store's report go to ``summary``."""
    sink = open_sink(config)
    try:
        if store is not None:
            _forget_earlier_run(sink, config.store.database)
        for profile in profiles.values():
            store_reference(sink, profile, source=f"demo reference/{profile.model}.jsonl")
        tap = _AlertTap(sink, console)
        stage = replay_alerts(config, tap, profiles, run_id=RUN_ID, notify=False, keep_rows=False)
        pipeline = Pipeline(
            config=config,
            profiles=profiles,
            sink=sink,
            dead_letters=MemoryDeadLetters(),
            run_id=RUN_ID,
            on_window=[stage],
        )
        pipeline.expect_partitions([0])
        summary.reached_ms = _feed(pipeline, records, summary.scenario, deadline, console)
        pipeline.finish()
        stage.finish()
    except BaseException:
        sink.close()
        raise
    written = finish(sink)
    stats = pipeline.stats
    # Rows the store acknowledged, not rows handed to the sink.
    summary.events, summary.windows, summary.rows = stats.events, stats.windows, written.stored_rows
    summary.written = written
    summary.alerts = sorted(tap.alerts, key=lambda a: (a.window_end, a.ts, a.rule))


def _print_summary(
    summary: DemoSummary,
    windows: Mapping[int, tuple[str, int]],
    note: str | None,
    console: Console,
) -> None:
    console.print(
        f"{summary.events:,} events, {summary.windows:,} windows, {summary.rows:,} rows stored "
        f"in {summary.seconds:.1f} s"
        + (
            f"; stopped by --minutes at {when(summary.reached_ms)}"
            if summary.reached_ms is not None
            else ""
        ),
        highlight=False,
    )
    print_report(
        console,
        findings=summary.findings,
        alerts=summary.alerts,
        queries=summary.queries,
        windows=windows,
        note=note,
    )


class _Label(msgspec.Struct):
    event_id: str = ""
    label: Any = None


_LABEL = msgspec.json.Decoder(_Label)


def split_reference(
    records: Iterator[Record], end_ms: int, label_wait_ms: int
) -> tuple[dict[str, list[Record]], dict[str, Any], list[Record], Iterator[Record]]:
    """The reference period's predictions by model, the labels of those predictions (which
    come in up to ``label_wait_ms`` later), the records before ``end_ms`` in stream order, and
    the rest of the stream."""
    by_model: dict[str, list[Record]] = {}
    labels: dict[str, Any] = {}
    ordered: list[Record] = []
    held: list[Record] = []
    for r in records:
        if r.topic == "labels":
            lab = _LABEL.decode(r.value)
            labels[lab.event_id] = lab.label
        if r.ts_ms < end_ms:
            ordered.append(r)
            if r.topic == "predictions":
                by_model.setdefault(r.key.decode(), []).append(r)
            continue
        held.append(r)
        if r.ts_ms >= end_ms + label_wait_ms:
            break
    return by_model, labels, ordered, itertools.chain(held, records)


def _feed(
    pipeline: Pipeline,
    records: Iterator[Record],
    scenario: Scenario,
    deadline: float | None,
    console: Console,
) -> int | None:
    """Run the records through the pipeline with a progress bar; the event time reached when
    the deadline stopped it, else ``None``."""
    columns = (
        TextColumn("[bold]pipeline"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[clock]}"),
        TextColumn("{task.fields[rate]:>8} events/s"),
        TimeRemainingColumn(),
    )
    span = scenario.end_ms - scenario.start_ms
    offset = 0
    last_ts = scenario.start_ms
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("pipeline", total=span, clock="", rate="-")
        batch: list[Message] = []
        labels: list[Message] = []
        for r in records:
            if r.topic == "labels":
                labels.append(Message(r.value, 0, len(labels), "labels", r.key))
                continue
            batch.append(Message(r.value, 0, offset, "predictions", r.key))
            offset += 1
            last_ts = r.ts_ms
            if len(batch) < BATCH:
                continue
            # Labels that came in during the batch first; the stream interleaves them by time.
            pipeline.add_labels(labels)
            pipeline.process(batch)
            batch, labels = [], []
            elapsed = bar.tasks[task].elapsed or 0.0
            bar.update(
                task,
                completed=last_ts - scenario.start_ms,
                clock=when(last_ts),
                rate=f"{offset / elapsed:,.0f}" if elapsed else "-",
            )
            if deadline is not None and time.monotonic() >= deadline:
                return last_ts
        pipeline.add_labels(labels)
        pipeline.process(batch)
        bar.update(task, completed=span, clock=when(last_ts))
    return None


def _forget_earlier_run(sink: Sink, database: str) -> None:
    """Delete the rows an earlier demo wrote to a ``--store`` server (run id ``demo`` only)."""
    client: Any = getattr(sink, "client", None)
    if client is None:
        return
    for table in ("metrics", "sketches", "alerts"):
        found = call(
            "counting an earlier demo's rows",
            client.query,
            f"SELECT count() FROM `{database}`.{table} WHERE run_id = {{run:String}}",
            parameters={"run": RUN_ID},
        ).result_rows[0][0]
        if found:
            call(
                "deleting an earlier demo's rows",
                client.command,
                f"DELETE FROM `{database}`.{table} WHERE run_id = {{run:String}}",
                parameters={"run": RUN_ID},
            )
