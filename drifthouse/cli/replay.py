"""``drifthouse replay``: historical data through the same pipeline, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from drifthouse.cli._collector import StartUp
from drifthouse.cli._common import ConfigOption, app, auto_line, err, out, skip_pandas_probe
from drifthouse.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from drifthouse.app.replay import StoredReplay
    from drifthouse.detectors.reference import Profile

__all__ = ["replay"]


@app.command()
def replay(
    source: Annotated[str, typer.Option(help="kafka:TOPIC or file:PATH")],
    config: ConfigOption = Path("drifthouse.yaml"),
    labels: Annotated[
        str | None, typer.Option(help="kafka:TOPIC or file:PATH of delayed labels.")
    ] = None,
    metric_events: Annotated[
        str | None, typer.Option(help="kafka:TOPIC or file:PATH of metric events.")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Start (RFC 3339 or epoch ms).")
    ] = None,
    to: Annotated[str | None, typer.Option(help="End, exclusive (RFC 3339 or epoch ms).")] = None,
    run_id: Annotated[str | None, typer.Option(help="Run id of the rows written.")] = None,
    notify: Annotated[bool, typer.Option(help="Send alerts to receivers too.")] = False,
    rules: Annotated[
        Path | None, typer.Option(help="Also count what these rules would have raised.")
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Delete the run id's rows first, if it has any.")
    ] = False,
) -> None:
    """Historical data through the same pipeline, with a progress bar."""
    # No collection over the start-up's objects until the first batch is through.
    with StartUp.held() as start:
        from drifthouse.app.replay import parse_time, replay_to_store
        from drifthouse.app.unused import check_inputs
        from drifthouse.config import load_config

        cfg = load_config(config)
        err.print(Text(auto_line(cfg)))
        other_rules = _load_rules(rules) if rules is not None else None
        from_ms, to_ms = parse_time(from_, "--from"), parse_time(to, "--to")
        skip_pandas_probe()
        with _progress_bar(after_batch=start.end) as progress:
            done = replay_to_store(
                cfg,
                source=source,
                run_id=run_id,
                from_ms=from_ms,
                to_ms=to_ms,
                notify=notify,
                keep_rows=other_rules is not None,
                progress=progress,
                labels=labels,
                metric_events=metric_events,
                replace=replace,
            )
        out.print(_summary_table(done, notify))
        if other_rules is not None:
            _print_backtest(done.alerts.rows, other_rules, done.profiles)
        done.written.check()  # a replay that did not store every row fails, saying which and why
        check_inputs(done.summary)  # and one that left events or labels out of the store


@contextmanager
def _progress_bar(
    after_batch: Callable[[], None],
) -> Iterator[Callable[[int, int, object], None]]:
    """The replay's progress bar on stderr: share done, events per second, time left;
    ``after_batch`` is called after each batch too."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("[bold]replay"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[rate]:>9} events/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("replay", total=None, rate="-")

        def progress(done: int, total: int, stats: object) -> None:
            after_batch()
            elapsed = bar.tasks[task].elapsed or 0.0
            events = getattr(stats, "messages", 0)
            bar.update(
                task,
                completed=done,
                total=total,
                rate=f"{events / elapsed:,.0f}" if elapsed else "-",
            )

        yield progress


def _summary_table(done: StoredReplay, notify: bool) -> Table:
    from drifthouse.profiles.auto import SMALL_REFERENCE, source_of

    summary, written = done.summary, done.written
    stats = summary.stats
    table = Table(title=escape(f"replay {summary.run_id}"), show_header=False, box=None)
    if done.replaced:
        rows = ", ".join(f"{t} {n:,}" for t, n in sorted(done.replaced.items()))
        table.add_row("replaced", f"deleted the run's earlier rows first ({rows})")
    table.add_row("events", f"{stats.events:,} ({summary.events_per_second:,.0f}/s)")
    table.add_row("invalid / late", f"{stats.invalid:,} / {stats.late:,}")
    # Counted from the store's acknowledgements, not from what the pipeline handed the sink.
    table.add_row("windows closed", f"{stats.windows:,}")
    table.add_row("rows", Text(written.stored_text()))
    if not written.ok:
        table.add_row(
            "not stored",
            Text(
                f"{written.refused_rows:,} refused, {written.spooled_rows:,} still spooled",
                "bold red",
            ),
        )
    table.add_row(
        "alerts recorded",
        f"{done.alerts.alerts:,}" + ("" if notify else " (receivers not notified; --notify sends)"),
    )
    if summary.labels is not None:
        lab = summary.labels
        table.add_row(
            "labels",
            f"{lab.read:,}: {lab.joined:,} joined, {lab.unmatched:,} unmatched, "
            f"{lab.expired:,} expired (late), {lab.duplicate:,} duplicate"
            + (f", {lab.waiting:,} without their prediction" if lab.waiting else "")
            + (f", {lab.refused:,} refused" if lab.refused else "")
            + (
                f"; {lab.predictions_sent_twice:,} predictions sent twice (an event_id seen "
                "before: counted as events, joined once)"
                if lab.predictions_sent_twice
                else ""
            ),
        )
    if done.late is not None:
        late = done.late
        table.add_row(
            "late labels",
            f"{late.pairs:,} joined in ClickHouse, {late.windows:,} windows rewritten",
        )
    if summary.dead_letters:
        table.add_row("dead letters", Text(summary.dead_letters))
    for model, ref in sorted(summary.auto_references.items()):
        if ref.profile is None:
            text = f"{model}: none (no event to profile in its first span)"
        else:
            events = ref.profile.baselines.events
            text = f"{model}: {source_of(ref).removeprefix('auto ')} ({events:,} events"
            text += (
                f"; fewer than {SMALL_REFERENCE:,}: drift against it is noisy, set "
                "a longer reference_span or profile the model)"
                if events < SMALL_REFERENCE
                else ")"
            )
        table.add_row("automatic reference", escape(text))
    return table


def _load_rules(path: Path) -> list[object]:
    import yaml
    from pydantic import TypeAdapter, ValidationError

    from drifthouse.config import RuleConfig

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--rules {path}: cannot be read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"--rules {path}: not valid YAML ({exc})") from exc
    items = data.get("rules") if isinstance(data, dict) else data
    try:
        return list(TypeAdapter(list[RuleConfig]).validate_python(items))
    except ValidationError as exc:
        problems = [
            (
                f"{path} rules{''.join(f'[{p}]' if isinstance(p, int) else f'.{p}' for p in e['loc'])}",
                e["msg"],
            )
            for e in exc.errors(include_input=False)
        ]
        raise ConfigError(f"--rules {path}: {len(problems)} problem(s)", problems) from None


def _print_backtest(
    rows: Sequence[object], rules: list[object], profiles: Mapping[str, Profile]
) -> None:
    from drifthouse.alerts import backtest
    from drifthouse.app.assembly import baselines_for

    ordered = sorted(rows, key=lambda r: getattr(r, "window_end", 0))
    report = backtest(ordered, rules, baselines_for(profiles))  # type: ignore[arg-type]
    table = Table(title="what these rules would have raised")
    for column in ("rule", "severity", "fired", "resolved", "still firing", "series"):
        table.add_column(column)
    for line in report.lines:
        table.add_row(
            Text(line.rule),
            line.severity,
            str(line.fired),
            str(line.resolved),
            str(line.still_firing),
            str(line.series),
        )
    out.print(table)
    for severity, count in sorted(report.by_severity().items()):
        out.print(f"{severity}: {count} alert(s)")
