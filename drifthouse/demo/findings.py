"""Which alert caught which injected fault, and how soon.

A fault is *caught* by the first firing alert on the fault's model (and feature, when the fault
has one) whose window holds events from after the onset. Model-level faults (latency, errors)
count only alerts on their expected metric, so a drift alert on the model's prediction is not
taken for a latency alert. Delays are in event time: the alert is known when its window closes.

Example
-------
>>> from drifthouse.rows import AlertRow
>>> from drifthouse.simulate import Fault
>>> fault = Fault("5xx spike", "fraud", "errors", 3_600_000, expect="error_rate_5xx")
>>> alert = AlertRow(ts=7_200_000, rule="serving-errors", severity="critical", status="firing",
...     model="fraud", model_version="2.3.0", feature="", segment="", metric="error_rate_5xx",
...     value=0.2, threshold=0.05, window_start=3_600_000, window_end=7_200_000, message="",
...     receivers=["pagerduty", "slack"], dedup_key="k", run_id="demo")
>>> found = find(fault, [alert], windows={3_600_000: ("1h", 3_600_000)}, reached_ms=None)
>>> found.rule, found.windows_after, found.delay_ms
('serving-errors', 1, 3600000)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from drifthouse.rows import AlertRow
from drifthouse.simulate import Fault

__all__ = ["LABEL_METRICS", "Finding", "find"]

#: Metrics computed from delayed labels: known only once labels have come in.
LABEL_METRICS = frozenset(
    {"accuracy", "precision", "recall", "f1", "auc", "log_loss", "mae", "rmse", "mape"}
)


@dataclass(frozen=True)
class Finding:
    """What became of one injected fault.

    ``alert`` is the first alert that caught it (``None`` when none did, and ``note`` says
    why); ``window`` names its window spec (``'1h'``, ``'15m/5m'``); ``windows_after`` counts
    the windows of that spec holding post-onset events up to and including the alert's (1:
    the first such window caught it); ``delay_ms`` runs from the onset to the window's end.
    """

    fault: Fault
    alert: AlertRow | None = None
    window: str = ""
    windows_after: int | None = None
    delay_ms: int | None = None
    note: str = ""

    @property
    def detected(self) -> bool:
        return self.alert is not None

    @property
    def rule(self) -> str | None:
        return None if self.alert is None else self.alert.rule

    @property
    def metric(self) -> str | None:
        return None if self.alert is None else self.alert.metric


def _matches(fault: Fault, alert: AlertRow) -> bool:
    if alert.status != "firing" or alert.model != fault.model:
        return False
    if alert.window_end <= fault.start_ms:  # the window holds no event from after the onset
        return False
    if fault.feature:
        return alert.feature == fault.feature
    return alert.metric == fault.expect


def find(
    fault: Fault,
    alerts: Sequence[AlertRow],
    *,
    windows: Mapping[int, tuple[str, int]],
    reached_ms: int | None,
) -> Finding:
    """The :class:`Finding` of ``fault`` among ``alerts``.

    ``windows`` maps a window length in ms to its name and hop; ``reached_ms`` is the event
    time the run stopped at (``None``: the whole scenario ran).
    """
    if reached_ms is not None and fault.start_ms >= reached_ms:
        return Finding(fault, note="not reached (the run was stopped by --minutes)")
    candidates = [a for a in alerts if _matches(fault, a)]
    if not candidates:
        return Finding(fault, note="not detected")
    # The expected metric first, then whichever window closed first.
    alert = min(candidates, key=lambda a: (a.metric != fault.expect, a.window_end, a.ts))
    size = alert.window_end - alert.window_start
    name, hop = windows.get(size, (f"{size // 60_000}m", size))
    first_end = (fault.start_ms // hop + 1) * hop
    return Finding(
        fault,
        alert,
        window=name,
        windows_after=(alert.window_end - first_end) // hop + 1,
        delay_ms=alert.window_end - fault.start_ms,
    )
