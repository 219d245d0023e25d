"""``drifthouse labels join``: join labels later than the stream's horizon in ClickHouse and
rewrite the label metrics of their old windows (docs/model-performance.md, "Labels later than
the horizon"); ``--every`` runs it in a loop, on the schedule the merger keeps
(:mod:`drifthouse.app.late_join`), until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drifthouse.cli._common import ConfigOption, app, out
from drifthouse.errors import StoreError, UsageError

if TYPE_CHECKING:
    from drifthouse.app.late_join import LateJoinSchedule
    from drifthouse.config import Config
    from drifthouse.stream.labels.late import LateJoinReport

__all__ = ["labels_join", "parse_since"]

labels_app = typer.Typer(help="Labels later than the stream's horizon.", no_args_is_help=True)
app.add_typer(labels_app, name="labels")


def parse_since(value: str, now_ms: int) -> int:
    """``--since`` as epoch seconds: ``all``, a duration back from now (``7d``), or a time
    (``2026-01-01``, ``2026-01-01T06:00:00Z``, epoch milliseconds)."""
    from drifthouse.durations import parse_duration
    from drifthouse.errors import DecodeError
    from drifthouse.events.timestamps import parse_ts

    if value == "all":
        return 0
    try:
        return (now_ms - parse_duration(value)) // 1000
    except (ValueError, TypeError):
        pass
    if len(value) == 10 and value[4:5] == "-" and value[7:8] == "-":
        value += "T00:00:00Z"  # a date: its start, UTC
    try:
        return parse_ts(int(value) if value.isdigit() else value) // 1000
    except (ValueError, TypeError, DecodeError) as exc:
        raise UsageError(
            f"--since must be 'all', a duration such as 7d, or a time such as 2026-01-01 "
            f"(got {value!r})"
        ) from exc


@labels_app.command("join")
def labels_join(
    config: ConfigOption = Path("drifthouse.yaml"),
    since: Annotated[
        str,
        typer.Option(
            help="Labels and predictions stored since: a duration back from now (7d), a time "
            "(2026-01-01), or 'all'. Reach back to the previous run's start."
        ),
    ] = "2d",
    run_id: Annotated[
        str, typer.Option("--run-id", help="The run whose windows to rewrite.")
    ] = "live",
    every: Annotated[
        str | None,
        typer.Option(
            help="Run again at every whole multiple of this period (1h: on the hour, 1d: at "
            "midnight, UTC) until Ctrl-C or SIGTERM; later runs look at what was stored since "
            "the previous run began."
        ),
    ] = None,
) -> None:
    """Join late labels in ClickHouse and rewrite the label metrics of their windows."""
    from drifthouse.app.late_join import LateJoinSchedule
    from drifthouse.config import load_config

    every_ms = _parse_every(every) if every is not None else None
    cfg = load_config(config)
    since_s = parse_since(since, int(time.time() * 1000))
    schedule = LateJoinSchedule(every_ms or 1, since_s=since_s)
    if every_ms is None:
        _print(_run_once(cfg, schedule, run_id), None)
        return
    with _StopSignals() as stop:
        while True:
            try:
                report = _run_once(cfg, schedule, run_id)
            except StoreError as exc:
                since_text = _iso(schedule.since_s * 1000) if schedule.since_s else "all"
                raise StoreError(
                    f"late label join, run {schedule.runs + 1} at {_iso(time.time() * 1000)} "
                    f"(store {cfg.masked_store_dsn()}, database {cfg.store.database!r}, rows "
                    f"stored since: {since_text}) failed, the loop stops: {exc}; start it again "
                    f"with --since {since_text} once the store is back"
                ) from exc
            _print(report, schedule.next_ms)
            while not stop.signal and time.time() * 1000 < (schedule.next_ms or 0):
                time.sleep(0.25)
            if stop.signal:
                runs = schedule.runs
                out.print(f"stopped ({stop.signal}) after {runs} run{'s' if runs != 1 else ''}")
                return


def _parse_every(value: str) -> int:
    from drifthouse.durations import parse_duration

    try:
        every_ms = parse_duration(value)
    except ValueError:
        every_ms = 0
    if every_ms < 1_000:
        raise UsageError(f"--every must be a duration such as 1h, at least 1s (got {value!r})")
    return every_ms


def _run_once(cfg: Config, schedule: LateJoinSchedule, run_id: str) -> LateJoinReport:
    """One run, on a store opened for it (the embedded engine is free between runs)."""
    from drifthouse.app.assembly import load_profiles
    from drifthouse.sinks import ClickHouseSink, open_store

    client = open_store(cfg.store_dsn(), cfg.store.database)
    try:
        sink = ClickHouseSink(client, database=cfg.store.database, batch_rows=cfg.store.batch_rows)
        report = schedule.run(
            client, cfg.store.database, cfg, load_profiles(cfg), sink, run_id=run_id
        )
        sink.close()
    finally:
        client.close()
    return report


def _print(report: LateJoinReport, next_ms: int | None) -> None:
    then = f"; next run at {_iso(next_ms)}" if next_ms is not None else ""
    out.print(
        f"late labels: {report.pairs:,} pairs joined in ClickHouse (models: {report.models}); "
        f"{report.windows:,} windows rewritten ({report.rows:,} rows); "
        f"{report.waiting:,} windows wait for the stream to be done with them{then}"
    )
    sys.stdout.flush()  # a loop's lines reach a pipe as they come


_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _iso(ms: float) -> str:
    at = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
    return at.replace("+00:00", "Z")


class _StopSignals:
    """SIGINT and SIGTERM end the loop after the run in hand (a second one acts as usual)."""

    def __init__(self) -> None:
        self.signal = ""
        self._before: dict[int, _Handler] = {}

    def __enter__(self) -> _StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._before[sig] = signal.signal(sig, self._stop)
        return self

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signal.Signals(signum).name
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._before.items():
            signal.signal(sig, handler)
        self._before.clear()

    def __exit__(self, *exc: object) -> None:
        self._restore()
