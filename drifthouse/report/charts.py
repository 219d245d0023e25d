"""Plotly figures (JSON, https://plotly.com/javascript/reference/) of one model's part of a
report (docs/report.md).

Figures are plain dicts, drawn in the page by the plotly.js that :mod:`~drifthouse.report.page`
inlines. Colours: cividis for the heatmap, Okabe-Ito for categories (both readable with the
common colour-vision deficiencies). Every hover shows the exact value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from drifthouse.durations import format_duration
from drifthouse.report.data import (
    AlertEvent,
    Categories,
    Histogram,
    ModelReport,
    Point,
    Series,
    Threshold,
)

__all__ = [
    "MAX_POINTS",
    "OKABE_ITO",
    "WHEN",
    "Figure",
    "alert_timeline",
    "category_bars",
    "histogram",
    "label_metrics",
    "layout",
    "prediction_drift",
    "quality",
    "serving",
    "stamp",
    "thinned",
]

Figure = dict[str, Any]

#: Okabe & Ito (2008), "Color Universal Design": yellow last (faint on white).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
SEVERITY = {"critical": "#D55E00", "warning": "#E69F00"}
_DASHES = ("solid", "dash", "dot", "dashdot")
#: How a hover shows a window's time (d3 time format).
WHEN = "%Y-%m-%d %H:%M UTC"
_FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}


def stamp(ms: int) -> str:
    """A window start as plotly reads dates (UTC): ``2026-01-02 06:00:00``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def layout(height: int, **more: Any) -> dict[str, Any]:
    return {
        "height": height,
        "margin": {"l": 70, "r": 30, "t": 40, "b": 50},
        "font": _FONT,
        "hovermode": "closest",
        "plot_bgcolor": "#ffffff",
        "legend": {"orientation": "h", "y": -0.18},
        **more,
    }


#: A line draws at most this many windows: a longer one keeps, per run of consecutive windows,
#: its lowest and its highest (each a real window, at its own time), so spikes stay.
MAX_POINTS = 1000


def thinned(points: Sequence[Point]) -> list[Point]:
    """``points``, or for more than :data:`MAX_POINTS` the lowest and highest of each run of
    consecutive windows, in time order (min-max decimation)."""
    if len(points) <= MAX_POINTS:
        return list(points)
    per = math.ceil(len(points) / (MAX_POINTS // 2))
    out: list[Point] = []
    for lo in range(0, len(points), per):
        run = points[lo : lo + per]
        low = min(run, key=lambda p: p.value)
        high = max(run, key=lambda p: p.value)
        out += sorted({low, high}, key=lambda p: p.start_ms)
    return out


def _line(s: Series, name: str, color: str, *, dash: str = "solid", axis: str = "") -> Figure:
    points = thinned(s.points)
    return {
        "type": "scatter",
        "mode": "lines+markers" if len(points) == len(s.points) else "lines",
        "name": name,
        "x": [stamp(p.start_ms) for p in points],
        "y": [p.value for p in points],
        "customdata": [[repr(p.value), p.n] for p in points],
        "line": {"color": color, "dash": dash, "width": 1.5},
        "marker": {"size": 4},
        "yaxis": f"y{axis}",
        "hovertemplate": f"{name}<br>window %{{x|{WHEN}}}<br>{s.metric} %{{customdata[0]}}"
        "<br>n %{customdata[1]}<extra></extra>",
    }


def _threshold_shapes(found: Sequence[Threshold], axis: str = "") -> list[Figure]:
    return [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "yref": f"y{axis}",
            "y0": t.value,
            "y1": t.value,
            "line": {"color": SEVERITY.get(t.severity, "#000000"), "dash": "dash", "width": 1},
            "label": {
                "text": f"{t.rule}: {t.metric} {t.direction} {t.value:g}",
                "textposition": "end",
                "font": {"size": 10},
            },
        }
        for t in found
    ]


def _bin_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all values"]
    inner = [f"[{a:.4g}, {b:.4g})" for a, b in itertools.pairwise(edges)]
    return [f"< {edges[0]:.4g}", *inner, f"≥ {edges[-1]:.4g}"]


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _bars(name: str, labels: list[str], counts: Sequence[int], color: str) -> Figure:
    return {
        "type": "bar",
        "name": name,
        "x": labels,
        "y": _shares(counts),
        "customdata": list(counts),
        "marker": {"color": color},
        "hovertemplate": f"{name}<br>%{{x}}<br>share %{{y:.4%}}<br>events %{{customdata:,}}"
        "<extra></extra>",
    }


def histogram(h: Histogram) -> Figure:
    """Reference vs current shares of a numeric feature on the reference's PSI bins."""
    labels = _bin_labels(h.edges)
    data = [
        _bars("reference", labels, h.reference, "#999999"),
        _bars("whole range", labels, h.current, OKABE_ITO[0]),
    ]
    if h.peak and h.peak_start_ms is not None:
        data.append(_bars(f"peak window {stamp(h.peak_start_ms)}", labels, h.peak, OKABE_ITO[5]))
    return {
        "data": data,
        "layout": layout(
            320,
            title={"text": f"{h.feature}: share of events per reference bin", "font": {"size": 13}},
            barmode="group",
            yaxis={"tickformat": ".0%"},
            xaxis={"type": "category", "tickangle": -30, "automargin": True},
            legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
            margin={"l": 60, "r": 20, "t": 70, "b": 40},
        ),
    }


def category_bars(c: Categories) -> Figure:
    """Reference vs current shares per category; categories the reference never saw apart."""
    labels = [label if label != "__other__" else "other (rare in reference)" for label in c.labels]
    current = list(c.current)
    reference = list(c.reference)
    if "__other__" in c.labels:
        i = c.labels.index("__other__")
        current[i] = max(current[i] - c.new, 0)
    labels.append("NEW (never in reference)")
    current.append(c.new)
    reference.append(0)
    ref = _bars("reference", labels, reference, "#999999")
    cur = _bars("whole range", labels, current, OKABE_ITO[0])
    cur["marker"] = {
        "color": [
            OKABE_ITO[5] if i == len(labels) - 1 else OKABE_ITO[0] for i in range(len(labels))
        ],
        "pattern": {"shape": ["/" if i == len(labels) - 1 else "" for i in range(len(labels))]},
    }
    return {
        "data": [ref, cur],
        "layout": layout(
            320,
            title={
                "text": f"{c.feature}: share of events per category ({c.new:,} new)",
                "font": {"size": 13},
            },
            barmode="group",
            yaxis={"tickformat": ".0%"},
            xaxis={"type": "category", "automargin": True},
            legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
            margin={"l": 60, "r": 20, "t": 70, "b": 40},
        ),
    }


def _stacked(
    panels: Sequence[tuple[str, list[Figure], list[Figure]]], *, height: int = 170
) -> Figure | None:
    """Panels one above the other on a shared time axis: ``(title, traces, shapes)`` each;
    panels with no trace are left out."""
    shown = [p for p in panels if p[1]]
    if not shown:
        return None
    k = len(shown)
    gap = 0.06
    size = (1 - gap * (k - 1)) / k
    spec = layout(height * k + 60)
    data: list[Figure] = []
    shapes: list[Figure] = []
    notes: list[Figure] = []
    for i, (title, traces, panel_shapes) in enumerate(shown):
        axis = "" if i == 0 else str(i + 1)
        top = 1 - i * (size + gap)
        spec[f"yaxis{axis}"] = {
            # Rounded: the last panel's bottom is a hair below 0 in floating point.
            "domain": [max(round(top - size, 6), 0.0), min(round(top, 6), 1.0)],
            "title": {"text": title},
            "rangemode": "tozero",
            "zeroline": True,
        }
        for t in traces:
            data.append({**t, "yaxis": f"y{axis}"})
        shapes.extend({**s, "yref": f"y{axis}"} for s in panel_shapes)
        notes.append(
            {
                "text": f"<b>{title}</b>",
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": top,
                "yanchor": "bottom",
                "showarrow": False,
            }
        )
    spec["xaxis"] = {
        "type": "date",
        "anchor": f"y{'' if k == 1 else k}",
        "title": {"text": "window start (UTC)"},
    }
    spec["shapes"] = shapes
    spec["annotations"] = notes
    spec["margin"] = {"l": 70, "r": 30, "t": 30, "b": 60}
    return {"data": data, "layout": spec}


def _per_feature(m: ModelReport, metric: str) -> list[Figure]:
    out = []
    for i, f in enumerate(m.features(metric)):
        s = m.series[(metric, f)]
        color = OKABE_ITO[i % len(OKABE_ITO)]
        trace = _line(s, f, color, dash=_DASHES[(i // len(OKABE_ITO)) % len(_DASHES)])
        trace["legendgroup"] = f
        trace["showlegend"] = metric == "missing_rate" or f not in m.features("missing_rate")
        out.append(trace)
    return out


def quality(m: ModelReport) -> Figure | None:
    """Missing rate, type errors, out of range and new categories, one line per feature."""
    return _stacked(
        [
            ("missing rate", _per_feature(m, "missing_rate"), []),
            ("type errors", _per_feature(m, "type_error"), []),
            ("out of range", _per_feature(m, "out_of_range"), []),
            ("new categories", _per_feature(m, "new_category"), []),
        ]
    )


def _model_lines(
    m: ModelReport, metrics: Sequence[str], feature: str = "", *, first: int = 0
) -> list[Figure]:
    """One line per metric; ``first`` is the first colour, so panels of a figure differ."""
    out = []
    for i, metric in enumerate(metrics, start=first):
        s = m.get(metric, feature)
        if s is not None and s.points:
            out.append(_line(s, metric, OKABE_ITO[i % len(OKABE_ITO)]))
    return out


def _limits(m: ModelReport, metrics: Sequence[str]) -> list[Figure]:
    return _threshold_shapes([t for t in m.thresholds if t.metric in metrics])


def serving(m: ModelReport) -> Figure | None:
    """Volume, latency quantiles and error rates."""
    latency = ("latency_p50", "latency_p95", "latency_p99")
    errors = ("error_rate_4xx", "error_rate_5xx")
    return _stacked(
        [
            ("events", _model_lines(m, ["events"]), []),
            ("latency (ms)", _model_lines(m, latency, first=1), _limits(m, latency)),
            ("error rate", _model_lines(m, errors, first=4), _limits(m, errors)),
        ]
    )


LABEL_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse", "mape", "r2")


def label_metrics(m: ModelReport) -> Figure | None:
    """Label coverage and the label metrics the model has (classification or regression)."""
    present = [x for x in LABEL_METRICS if m.get(x) is not None]
    coverage = m.get("labels_coverage")
    if not present and (coverage is None or not any(p.value for p in coverage.points)):
        return None  # no label joined: a flat zero says less than "no data"
    return _stacked(
        [
            ("label coverage", _model_lines(m, ["labels_coverage"]), []),
            ("label metrics", _model_lines(m, present, first=1), _limits(m, present)),
        ]
    )


def prediction_drift(m: ModelReport) -> Figure | None:
    """Drift of the model's output: PSI and JS of ``__prediction__``, and its mean."""
    drift = ("psi", "js")
    return _stacked(
        [
            ("prediction drift", _model_lines(m, drift, "__prediction__"), _limits(m, drift)),
            ("prediction mean", _model_lines(m, ["mean"], "__prediction__", first=2), []),
        ]
    )


def _series(a: AlertEvent) -> str:
    """``data-drift · amount · 15m``: rule, feature and window length (each window spec has
    its own alert series)."""
    return f"{a.rule} · {a.feature or 'model'} · {format_duration(a.window_end_ms - a.window_start_ms)}"


def alert_timeline(alerts: Sequence[AlertEvent]) -> Figure | None:
    """Each alert state change at its window's end: colour by severity, filled when it fired,
    hollow when it resolved; the hover names the receivers."""
    if not alerts:
        return None
    data = []
    for severity in sorted({a.severity for a in alerts}):
        for status, symbol in (("firing", "triangle-up"), ("resolved", "circle-open")):
            chosen = [a for a in alerts if a.severity == severity and a.status == status]
            if not chosen:
                continue
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{severity} {'fired' if status == 'firing' else 'resolved'}",
                    "x": [stamp(a.window_end_ms) for a in chosen],
                    "y": [_series(a) for a in chosen],
                    "customdata": [
                        [
                            a.metric,
                            repr(a.value),
                            repr(a.threshold),
                            ", ".join(a.receivers) or "none",
                            stamp(a.window_start_ms),
                        ]
                        for a in chosen
                    ],
                    "marker": {
                        "symbol": symbol,
                        "size": 11,
                        "color": SEVERITY.get(severity, "#000000"),
                    },
                    "hovertemplate": "%{y}<br>window %{customdata[4]} to %{x}<br>"
                    "%{customdata[0]} %{customdata[1]} (threshold %{customdata[2]})<br>"
                    f"{status} → %{{customdata[3]}}<extra></extra>",
                }
            )
    rows = len({_series(a) for a in alerts})
    return {
        "data": data,
        "layout": layout(
            120 + 28 * rows,
            xaxis={"type": "date", "title": {"text": "window end (UTC)"}},
            yaxis={"type": "category", "automargin": True},
            legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        ),
    }
