"""The drift heatmap: features x windows coloured by a drift metric, with the configured
rules' thresholds on the colour bar and a mark on every cell past one (docs/report.md)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from drifthouse.app.report.charts import WHEN, Figure, layout, stamp
from drifthouse.app.report.data import ModelReport, Threshold

__all__ = ["drift_heatmap"]

Grid = list[list[float | None]]


def _grid(m: ModelReport, metric: str, features: Sequence[str]) -> tuple[list[int], Grid]:
    """Window starts and one row of values per feature (``None`` where a window has none)."""
    starts = sorted({p.start_ms for f in features for p in m.series[(metric, f)].points})
    column = {ms: i for i, ms in enumerate(starts)}
    z: Grid = []
    for f in features:
        row: list[float | None] = [None] * len(starts)
        for p in m.series[(metric, f)].points:
            row[column[p.start_ms]] = p.value
        z.append(row)
    return starts, z


def _colour_bar(metric: str, z: Grid, limits: Sequence[Threshold]) -> tuple[float, dict[str, Any]]:
    """The colour scale's top and its bar, ticked at every threshold."""
    peak = max((v for row in z for v in row if v is not None), default=0.0)
    # Colours saturate at four times the highest threshold, so a window just past it is not
    # lost in the dark end beside a far larger peak; the hover keeps the exact value.
    top = max([peak, *(2 * t.value for t in limits)]) or 1.0
    if limits:
        top = min(top, 4 * max(t.value for t in limits))
    ticks = sorted({0.0, *(t.value for t in limits)})
    labels = [f"{v:g} " + ", ".join(t.rule for t in limits if t.value == v) for v in ticks]
    if peak > top:
        ticks, labels = [*ticks, top], [*labels, f"≥ {top:g}"]
    return top, {"title": {"text": metric.upper()}, "tickvals": ticks, "ticktext": labels}


def _marks(t: Threshold, metric: str, x: list[str], features: Sequence[str], z: Grid) -> Figure:
    """A mark on each cell past the threshold."""
    hits = [
        (x[i], f)
        for f, row in zip(features, z, strict=True)
        for i, v in enumerate(row)
        if v is not None and (v > t.value if t.direction == ">" else v < t.value)
    ]
    return {
        "type": "scatter",
        "mode": "markers",
        "name": f"over threshold: {t.rule} ({metric} {t.direction} {t.value:g})",
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


def drift_heatmap(m: ModelReport, metric: str = "psi") -> Figure | None:
    """Features x windows coloured by ``metric`` (cividis); cells past a rule's threshold marked."""
    features = m.features(metric)
    if not features:
        return None
    starts, z = _grid(m, metric, features)
    x = [stamp(ms) for ms in starts]
    limits = [t for t in m.thresholds if t.metric == metric]
    top, bar = _colour_bar(metric, z, limits)
    step = min((b - a for a, b in itertools.pairwise(starts)), default=3_600_000)
    cells: Figure = {
        "type": "heatmap",
        "name": metric,
        "x": x,
        "y": features,
        "z": z,
        "zmin": 0,
        "zmax": top,
        "colorscale": "Cividis",
        "xgap": 1,
        "ygap": 1,
        "colorbar": bar,
        # The exact value (Python's shortest round-trip text), not plotly's 6 digits.
        "text": [["" if v is None else repr(v) for v in row] for row in z],
        "hovertemplate": f"feature %{{y}}<br>window %{{x|{WHEN}}}<br>{metric} %{{text}}"
        "<extra></extra>",
    }
    return {
        "data": [cells, *(_marks(t, metric, x, features, z) for t in limits)],
        "layout": layout(
            140 + 26 * len(features),
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
