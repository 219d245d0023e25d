"""The terminal: one coloured line per alert, with rich."""

from __future__ import annotations

from typing import IO

from rich.console import Console
from rich.markup import escape

from drifthouse.alerts.base import Notification
from drifthouse.alerts.receivers._common import fmt_value, iso, plain_alert

__all__ = ["ConsoleReceiver"]

_STYLE = {"critical": "bold red", "warning": "yellow", "resolved": "green"}


class ConsoleReceiver:
    """Prints notifications; used by ``drifthouse demo`` and handy while writing rules."""

    def __init__(self, *, name: str = "console", file: IO[str] | None = None) -> None:
        self.name = name
        self.console = Console(file=file, highlight=False, soft_wrap=True)

    def send(self, notification: Notification) -> None:
        n = notification
        new = set(n.new)
        for alert in [*n.firing, *n.resolved]:
            alert = plain_alert(alert)  # no terminal escapes from event data
            if alert.status == "firing" and n.kind != "repeat" and alert.dedup_key not in new:
                continue
            status = (
                "RESOLVED"
                if alert.status == "resolved"
                else ("REPEAT" if n.kind == "repeat" else "FIRING")
            )
            style = (
                _STYLE["resolved"] if alert.status == "resolved" else _STYLE.get(alert.severity, "")
            )
            where = (
                alert.model
                + (f"/{alert.feature}" if alert.feature else "")
                + (f" [{alert.segment}]" if alert.segment else "")
            )
            self.console.print(
                f"[{style}]{status:8} {alert.severity:8}[/] {iso(alert.ts)} {escape(alert.rule)} {escape(where)} "
                f"{escape(alert.metric)}={fmt_value(alert.value)} (threshold {fmt_value(alert.threshold)})",
                markup=True,
            )
