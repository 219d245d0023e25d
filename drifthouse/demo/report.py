"""What the demo prints: alerts as they fire, the faults it caught, the alerts, SQL to try."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.box import SIMPLE_HEAD
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drifthouse.demo.findings import Finding
from drifthouse.rows import AlertRow

__all__ = ["DemoQuery", "alert_line", "demo_queries", "print_report", "when", "window_name"]

_STYLE = {"critical": "bold red", "warning": "yellow"}


@dataclass(frozen=True)
class DemoQuery:
    """A query to try after the demo, and the command line that runs it."""

    title: str
    sql: str
    command: str


def when(ms: int) -> str:
    """``2026-01-02 06:00`` (UTC)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _where(alert: AlertRow) -> str:
    return alert.model + (f"/{alert.feature}" if alert.feature else "")


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def alert_line(alert: AlertRow) -> Text:
    """One alert state change, as printed while the demo runs."""
    resolved = alert.status == "resolved"
    style = "green" if resolved else _STYLE.get(alert.severity, "")
    text = Text.assemble(
        (f"{alert.status.upper():8} {alert.severity:8}", style),
        f" {when(alert.window_end)}  {alert.rule}  {_where(alert)}  ",
        f"{alert.metric}={_num(alert.value)} (threshold {_num(alert.threshold)})",
    )
    if not resolved:
        text.append(f"  -> {', '.join(alert.receivers) or 'no receiver'}", "dim")
    return text


def demo_queries(config_path: Path, run_id: str) -> list[DemoQuery]:
    """Five queries over the demo's rows, with the ``drifthouse sql`` command of each."""
    run = f"run_id = '{run_id}'"
    queries = [
        (
            "the alerts the demo raised, and who was told",
            "SELECT ts, status, severity, rule, model, feature, metric, round(value, 3) AS value, "
            f"receivers FROM alerts FINAL WHERE {run} ORDER BY ts, rule",
        ),
        (
            "the features that drifted most (peak hourly PSI)",
            "SELECT model, feature, round(max(value), 3) AS peak_psi, "
            "argMax(window_start, value) AS peak_window FROM metrics FINAL "
            f"WHERE {run} AND metric = 'psi' AND window = '1h' AND segment = '' "
            "GROUP BY model, feature ORDER BY peak_psi DESC LIMIT 8",
        ),
        (
            "hours when fraud served more than 1% 5xx errors",
            "SELECT window_start, round(value, 3) AS error_rate_5xx, n FROM metrics FINAL "
            f"WHERE {run} AND model = 'fraud' AND metric = 'error_rate_5xx' AND window = '1h' "
            "AND feature = '' AND segment = '' AND value > 0.01 ORDER BY window_start",
        ),
        (
            "eta's p95 latency, every 6 hours",
            "SELECT toStartOfInterval(window_start, INTERVAL 6 HOUR) AS hours, "
            "round(max(value), 1) AS p95_ms FROM metrics FINAL "
            f"WHERE {run} AND model = 'eta' AND metric = 'latency_p95' AND window = '1h' "
            "AND feature = '' AND segment = '' GROUP BY hours ORDER BY hours",
        ),
        (
            "data quality of fraud per day: missing ages, unseen devices",
            "SELECT toDate(window_start) AS day, "
            "round(avgIf(value, feature = 'age' AND metric = 'missing_rate'), 3) AS age_missing, "
            "sumIf(value, feature = 'device' AND metric = 'new_category') AS new_devices "
            f"FROM metrics FINAL WHERE {run} AND model = 'fraud' AND window = '1h' "
            "AND segment = '' GROUP BY day ORDER BY day",
        ),
    ]
    config = shlex.quote(str(config_path))
    return [
        DemoQuery(title, sql, f"drifthouse sql -c {config} {_quoted(sql)}")
        for title, sql in queries
    ]


def _quoted(sql: str) -> str:
    # Double quotes read better than shlex's '"'"' around SQL's single quotes; they are safe
    # while the text holds none of the characters a shell expands inside them.
    return f'"{sql}"' if not set(sql) & set('"$`\\!') else shlex.quote(sql)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _after(finding: Finding) -> str:
    if finding.alert is None or finding.delay_ms is None or finding.windows_after is None:
        return ""
    minutes = finding.delay_ms // 60_000
    span = f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"
    a = finding.alert
    return (
        f"+{span}: {_ordinal(finding.windows_after)} {finding.window} window "
        f"({short(a.window_start)[6:]}-{short(a.window_end)[6:]})"
    )


def short(ms: int) -> str:
    """``01-02 06:00``: month, day and time (UTC) - the demo's story fits in one month."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%m-%d %H:%M")


def _findings_table(findings: Sequence[Finding]) -> Table:
    table = Table(
        title="injected faults and what caught them", title_justify="left", box=SIMPLE_HEAD
    )
    for column in ("fault", "onset", "caught by", "after onset (event time)"):
        table.add_column(column, overflow="fold")
    for f in findings:
        fault = f.fault
        name = f"{fault.name} ({fault.model}" + (f"/{fault.feature})" if fault.feature else ")")
        if f.alert is None:
            caught = Text(f.note, "yellow" if "label" in f.note else "red")
            table.add_row(name, short(fault.start_ms), caught, "")
            continue
        a = f.alert
        caught = Text.assemble(
            (a.rule, _STYLE.get(a.severity, "")), f": {a.metric}={_num(a.value)}"
        )
        table.add_row(name, short(fault.start_ms), caught, _after(f))
    return table


def window_name(alert: AlertRow, windows: Mapping[int, tuple[str, int]]) -> str:
    """The window spec an alert's window belongs to, from its length."""
    size = alert.window_end - alert.window_start
    return windows.get(size, (f"{size // 60_000}m", size))[0]


def _alerts_table(alerts: Sequence[AlertRow], windows: Mapping[int, tuple[str, int]]) -> Table:
    """One line per rule and series: when it first fired (and in which window), when it resolved."""
    table = Table(
        title="alerts raised (event time; critical in red, warnings in yellow)",
        title_justify="left",
        box=SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("rule", no_wrap=True)
    table.add_column("where", overflow="fold", min_width=15)
    table.add_column("first fired", no_wrap=True)
    table.add_column("resolved", no_wrap=True)
    table.add_column("sent to")
    series: dict[tuple[str, str, str], list[AlertRow]] = {}
    for a in sorted(alerts, key=lambda a: (a.window_end, a.ts)):
        series.setdefault((a.rule, a.model, a.feature), []).append(a)
    for rows in series.values():
        firing = [a for a in rows if a.status == "firing"]
        if not firing:
            continue
        first = firing[0]
        resolved = [a for a in rows if a.status == "resolved"]
        table.add_row(
            Text(first.rule, _STYLE.get(first.severity, "")),
            _where(first),
            f"{short(first.window_end)} {window_name(first, windows)}",
            Text(short(resolved[-1].window_end), "green") if resolved else "",
            ", ".join(first.receivers),
        )
    return table


def print_report(
    console: Console,
    *,
    findings: Sequence[Finding],
    alerts: Sequence[AlertRow],
    queries: Sequence[DemoQuery],
    windows: Mapping[int, tuple[str, int]],
    note: str | None,
) -> None:
    """The three parts of the demo's ending: faults, alerts, queries."""
    console.print()
    console.print(_findings_table(findings))
    console.print()
    console.print(_alerts_table(alerts, windows))
    firing = [a for a in alerts if a.status == "firing"]
    critical = sum(a.severity == "critical" for a in firing)
    console.print(
        f"{len(firing)} alerts fired: {critical} critical (to pagerduty and slack), "
        f"{len(firing) - critical} warning (to slack only); "
        f"{len(alerts) - len(firing)} resolved."
    )
    console.print()
    console.print(Text("SQL to try", "bold"))
    if note:
        console.print(Text(note, "yellow"))
    for q in queries:
        console.print(Text(f"# {q.title}", "dim"))
        console.print(q.command, soft_wrap=True, highlight=False, markup=False)
