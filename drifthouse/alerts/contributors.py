"""The top contributors of a drifted window, in words, for alert messages and the report
(docs/alerting.md "Top contributors", docs/statistics.md "Drift attribution").

A window's attribution rows (``psi_contribution`` and ``mass_shift`` per bin, ``bin`` naming it;
``psi_segment_share`` per segment value of a feature or of the prediction) are read from the same
batch of rows as the drift metric a rule fires on, so a replay writes the same message as the
live run::

    amount: +18% of events at or above 420.0; segment country=BR carries 61% of the drift
    __prediction__: +20% of events in [0.8, 0.9); segment country=BR carries 61% of the drift
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from drifthouse.rows import MetricRow

__all__ = [
    "DRIFT_RULE_METRICS",
    "Contributors",
    "WindowContributors",
    "describe_bin",
    "describe_contributors",
]

#: The drift metrics whose alerts name their contributors.
DRIFT_RULE_METRICS = frozenset({"psi", "js", "kl"})
#: Bins and segment values named in a message, at most.
TOP = 2

_Key = tuple[str, str, str, str, int]  # model, model_version, window, feature, window_end


def _percent(share: float) -> str:
    pct = 100.0 * share
    text = f"{pct:+.0f}" if abs(pct) >= 1 else f"{pct:+.1f}"
    return text + "%"


def describe_bin(label: str, shift: float) -> str:
    """A bin's change of share in words: ``+18% of events at or above 420.0``.

    Examples
    --------
    >>> describe_bin("(-inf, 12.5)", -0.09)
    '-9% of events below 12.5'
    """
    head = f"{_percent(shift)} of events"
    if label.startswith("(-inf, ") and label.endswith(")") and label != "(-inf, +inf)":
        return f"{head} below {label[len('(-inf, ') : -1]}"
    if label.startswith("[") and label.endswith(", +inf)"):
        return f"{head} at or above {label[1 : -len(', +inf)')]}"
    if label.startswith(("[", "(")) and label.endswith(")") and ", " in label:
        return f"{head} in {label}"
    return f"{head} are {label!r}"


def describe_contributors(
    feature: str, bins: Sequence[tuple[str, float, float]], shares: Sequence[tuple[str, float]]
) -> str:
    """``bins`` as ``(label, psi term, mass shift)`` and ``shares`` as ``(segment, share)``, each
    largest first, in one line naming the first :data:`TOP` of each; ``''`` when both are empty."""
    parts = []
    if bins:
        parts.append(f"{feature}: " + ", ".join(describe_bin(b, s) for b, _, s in bins[:TOP]))
    parts += [
        f"segment {seg} carries {100 * share:.0f}% of the drift" for seg, share in shares[:TOP]
    ]
    return "; ".join(parts)


@dataclass
class Contributors:
    """One feature's attribution rows of one window."""

    psi: dict[str, float] = field(default_factory=dict)
    shift: dict[str, float] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)

    def ranked_bins(self) -> list[tuple[str, float, float]]:
        """``(bin, psi term, mass shift)``, largest term first (ties by label)."""
        return sorted(
            ((b, v, self.shift.get(b, 0.0)) for b, v in self.psi.items()),
            key=lambda t: (-t[1], t[0]),
        )

    def ranked_shares(self) -> list[tuple[str, float]]:
        return sorted(self.shares.items(), key=lambda t: (-t[1], t[0]))


class WindowContributors:
    """The attribution rows among a batch of metric rows, by model, version, window and feature."""

    def __init__(self, rows: Iterable[MetricRow]) -> None:
        self._by: dict[_Key, Contributors] = {}
        for row in rows:
            if row.metric not in {"psi_contribution", "mass_shift", "psi_segment_share"}:
                continue
            c = self._by.setdefault(self._key(row), Contributors())
            if row.metric == "psi_segment_share":
                c.shares[row.segment] = row.value
            elif not row.segment:
                (c.psi if row.metric == "psi_contribution" else c.shift)[row.bin] = row.value

    @staticmethod
    def _key(row: MetricRow) -> _Key:
        return (row.model, row.model_version, row.window, row.feature, row.window_end)

    def text(self, row: MetricRow) -> str:
        """The contributors of the drift ``row`` measures (``''`` for other metrics, segment
        rows, or a window without attribution rows)."""
        if row.metric not in DRIFT_RULE_METRICS or row.segment or row.bin:
            return ""
        c = self._by.get(self._key(row))
        if c is None:
            return ""
        return describe_contributors(row.feature, c.ranked_bins(), c.ranked_shares())
