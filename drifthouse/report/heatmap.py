"""The drift heatmap: features x windows coloured by PSI or by the drift test's p-value, with
the configured rules' thresholds on the colour bar and a mark on every cell past one
(docs/report.md)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from drifthouse.report.charts import WHEN, Figure, layout, stamp
from drifthouse.report.data import ModelReport, Threshold

__all__ = ["KINDS", "MAX_COLUMNS", "drift_heatmap", "heatmap_metrics"]

#: At most this many columns: a longer range (years of hourly windows) folds runs of
#: consecutive windows into one column coloured by its worst window (docs/report.md).
MAX_COLUMNS = 500

#: What a heatmap can be coloured by: the metric of a numeric and of a categorical feature.
KINDS: dict[str, tuple[str, str]] = {"psi": ("psi", "psi"), "p-value": ("ks_pvalue", "chi2_pvalue")}

Grid = list[list[float | None]]


def heatmap_metrics(m: ModelReport, kind: str) -> dict[str, str]:
    """Each feature drawn, with the metric its row shows."""
    numeric, categorical = KINDS[kind]
    out = {f: categorical for f in m.features(categorical)}
    out.update({f: numeric for f in m.features(numeric)})  # numeric first where both exist
    return dict(sorted(out.items()))


def _grid(m: ModelReport, rows: dict[str, str]) -> tuple[list[int], Grid]:
    """Window starts and one row of values per feature (``None`` where a window has none)."""
    starts = sorted({p.start_ms for f, k in rows.items() for p in m.series[(k, f)].points})
    column = {ms: i for i, ms in enumerate(starts)}
    z: Grid = []
    for f, metric in rows.items():
        row: list[float | None] = [None] * len(starts)
        for p in m.series[(metric, f)].points:
            row[column[p.start_ms]] = p.value
        z.append(row)
    return starts, z


def _fold(kind: str, starts: list[int], z: Grid) -> tuple[list[int], Grid, list[list[str]]]:
    """At most :data:`MAX_COLUMNS` columns, each the worst value (highest PSI, lowest p-value)
    of a run of consecutive windows; with the hover text of each cell: the exact value, and
    for a folded column the span it covers and the window that peaked."""
    per = math.ceil(len(starts) / MAX_COLUMNS) if starts else 1
    if per <= 1:
        return starts, z, [["" if v is None else repr(v) for v in row] for row in z]
    worst = max if kind != "p-value" else min
    folded: Grid = []
    text: list[list[str]] = []
    for row in z:
        cells: list[float | None] = []
        notes: list[str] = []
        for lo in range(0, len(starts), per):
            span = [(v, starts[i]) for i, v in enumerate(row[lo : lo + per], lo) if v is not None]
            if not span:
                cells.append(None)
                notes.append("")
                continue
            value, at = worst(span, key=lambda pair: pair[0])
            last = starts[min(lo + per, len(starts)) - 1]
            cells.append(value)
            notes.append(
                f"{value!r}, the worst of {len(span)} windows from {stamp(starts[lo])} to "
                f"{stamp(last)}: at {stamp(at)}"
            )
        folded.append(cells)
        text.append(notes)
    return starts[::per], folded, text


#: p-values are coloured by ``-log10(p)`` up to this (p = 1e-6): under no drift they spread
#: evenly over [0, 1], which a linear scale would paint as noise.
_P_FLOOR_LOG = 6.0
_P_TICKS = (1.0, 0.05, 0.01, 0.001, 1e-6)


def _colour(kind: str, z: Grid) -> Grid:
    """What the colours show: the value, or ``-log10`` of a p-value."""
    if kind != "p-value":
        return z
    return [[None if v is None else -math.log10(max(v, 1e-300)) for v in row] for row in z]


def _colour_bar(kind: str, z: Grid, limits: Sequence[Threshold]) -> dict[str, Any]:
    """The colour scale (drift bright) and its bar, ticked at every threshold."""
    if kind == "p-value":
        marks = {p: f"{p:g}" for p in _P_TICKS}
        for t in limits:
            marks[t.value] = f"{t.value:g} " + ", ".join(
                sorted({u.rule for u in limits if u.value == t.value})
            )
        marks[_P_TICKS[-1]] = "≤ " + marks[_P_TICKS[-1]]
        ticks = sorted(marks, reverse=True)
        return {
            "zmin": 0,
            "zmax": _P_FLOOR_LOG,
            "colorbar": {
                "title": {"text": "P-VALUE"},
                "tickvals": [-math.log10(p) for p in ticks],
                "ticktext": [marks[p] for p in ticks],
            },
        }
    peak = max((v for row in z for v in row if v is not None), default=0.0)
    # Colours saturate at four times the highest threshold, so a window just past it is not
    # lost in the dark end beside a far larger peak; the hover keeps the exact value.
    top = max([peak, *(2 * t.value for t in limits)]) or 1.0
    if limits:
        top = min(top, 4 * max(t.value for t in limits))
    ticks = sorted({0.0, top, *(t.value for t in limits)})
    labels = [
        f"{v:g} " + ", ".join(sorted({t.rule for t in limits if t.value == v})) for v in ticks
    ]
    if peak > top:
        labels[-1] = f"≥ {top:g}"
    return {
        "zmin": 0,
        "zmax": top,
        "colorbar": {"title": {"text": kind.upper()}, "tickvals": ticks, "ticktext": labels},
    }


def _marks(t: Threshold, x: list[str], rows: dict[str, str], z: Grid) -> Figure:
    """A mark on each cell of the threshold's metric past it."""
    hits = [
        (x[i], f)
        for (f, metric), row in zip(rows.items(), z, strict=True)
        if metric == t.metric
        for i, v in enumerate(row)
        if v is not None and (v > t.value if t.direction == ">" else v < t.value)
    ]
    return {
        "type": "scatter",
        "mode": "markers",
        "name": f"past threshold: {t.rule} ({t.metric} {t.direction} {t.value:g})",
        "x": [h[0] for h in hits],
        "y": [h[1] for h in hits],
        "marker": {
            # white with a dark edge: seen on dark and light cells, and in the legend
            "symbol": "x",
            "size": 8,
            "color": "#ffffff",
            "line": {"width": 1, "color": "#1b1b1b"},
        },
        "hoverinfo": "skip",
    }


def drift_heatmap(m: ModelReport, kind: str = "psi") -> Figure | None:
    """Features x windows coloured by ``kind`` (:data:`KINDS`, cividis); cells past a rule's
    threshold marked."""
    rows = heatmap_metrics(m, kind)
    if not rows:
        return None
    starts, z, text = _fold(kind, *_grid(m, rows))
    x = [stamp(ms) for ms in starts]
    limits = [t for t in m.thresholds if t.metric in set(rows.values())]
    step = min((b - a for a, b in itertools.pairwise(starts)), default=3_600_000)
    cells: Figure = {
        "type": "heatmap",
        "name": kind,
        "x": x,
        "y": list(rows),
        "z": _colour(kind, z),
        "colorscale": "Cividis",
        "xgap": 1,
        "ygap": 1,
        **_colour_bar(kind, z, limits),
        # The exact value (Python's shortest round-trip text), not plotly's 6 digits.
        "text": text,
        "hovertemplate": f"feature %{{y}}<br>window %{{x|{WHEN}}}<br>{kind} %{{text}}"
        "<extra></extra>",
    }
    if len(set(rows.values())) > 1:  # rows of different metrics: each cell names its own
        cells["customdata"] = [[metric] * len(starts) for metric in rows.values()]
        cells["hovertemplate"] = cells["hovertemplate"].replace(f"{kind} %", "%{customdata} %")
    return {
        "data": [cells, *(_marks(t, x, rows, z) for t in limits)],
        "layout": layout(
            140 + 26 * len(rows),
            xaxis={
                "title": {"text": f"window start (UTC), {m.model}"},
                "type": "date",
                # the cells' extent exactly: the marks would pad it otherwise
                "range": [stamp(starts[0] - step // 2), stamp(starts[-1] + step // 2)],
            },
            yaxis={"autorange": "reversed", "type": "category", "automargin": True},
            legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
            showlegend=True,
        ),
    }
