"""What a bounded run left out of the store, said once it is over (docs/cli.md, "Exit codes").

A replay stores every window its usable events make, then fails (exit code 1) when any event or
label did not reach the store: events dead-lettered as invalid or late, labels refused or
expired. The rows of everything else are stored; the message says how many were left out,
why (the reasons, with the first of each), where they are kept and the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drifthouse.errors import InputsNotUsed

if TYPE_CHECKING:
    from drifthouse.app.replay import ReplaySummary

__all__ = ["check_inputs"]

_TABLES = (".csv", ".csv.gz", ".parquet", ".pq", ".tsv")


def _counted(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def check_inputs(summary: ReplaySummary) -> None:
    """Raise :class:`InputsNotUsed` when ``summary`` left events or labels out of the store."""
    stats, labels = summary.stats, summary.labels
    events = stats.invalid + stats.late
    refused_labels = labels.refused if labels is not None else 0
    expired = labels.expired if labels is not None else 0
    parts: list[str] = []
    if events:
        parts.append(
            f"{_counted(events, 'event was', 'events were')} not used "
            f"({stats.invalid:,} invalid, {stats.late:,} late)"
        )
    if refused_labels or expired:
        parts.append(
            f"{_counted(refused_labels + expired, 'label was', 'labels were')} not used "
            f"({refused_labels:,} refused, {expired:,} expired)"
        )
    if not parts:
        return
    where = summary.dead_letters or "the dead letters"
    reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(summary.refused.items()))
    lines = [
        f"{summary.source}: " + "; ".join(parts) + "; the rows of everything else are stored.",
    ]
    if summary.refused:
        lines.append(f"Kept in {where}, by reason: {reasons}.")
        first = sorted(summary.first_refused.items())[0]
        lines.append(f"The first {first[0]}: {first[1]}.")
    if "invalid_json" in summary.refused and summary.source.lower().endswith(_TABLES):
        lines.append(
            "A replay reads JSON Lines, one event per line (docs/events.md); CSV and Parquet "
            "files are read by `drifthouse profile` only: write the rows as events first."
        )
    if stats.late:
        lines.append(
            "Late events came after their window closed (more than `metrics.allowed_lateness` "
            "behind the newest event): a file must be in event-time order (sort it by `ts` "
            "first), or raise `metrics.allowed_lateness`."
        )
    if expired:
        lines.append(
            "Expired labels are stamped more than `metrics.label_horizon` behind the "
            "predictions' time: a labels file must be in label-time order (sort it by `ts`)."
        )
    lines.append("Fix the input and replay it.")
    raise InputsNotUsed(" ".join(lines))
