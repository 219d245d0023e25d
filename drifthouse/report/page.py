"""The report as one self-contained HTML page: plotly.js inlined once, the figures as JSON,
tables as HTML (docs/report.md). Nothing is fetched when the page opens."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache

from drifthouse.report import charts, heatmap
from drifthouse.report.data import Change, ModelReport, Report, RunSummary

__all__ = ["render"]

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1b1b;
background:#f6f6f4}
header,main{max-width:1200px;margin:0 auto;padding:0 24px}
header{padding-top:18px}h1{font-size:22px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;
border-bottom:2px solid #0072B2;padding-bottom:4px}h3{font-size:15px;margin:20px 0 6px}
.meta{color:#555;font-size:13px}nav a{margin-right:14px}
section.model{background:#fff;border:1px solid #ddd;border-radius:6px;padding:4px 18px 18px;
margin:18px 0}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 10px;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:#777;font-style:italic;margin:6px 0}.note{color:#555;font-size:12px;margin:2px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:8px}
.critical{color:#B3400A;font-weight:600}.warning{color:#8a5a00;font-weight:600}
"""

_LOADER = """
const figures = JSON.parse(document.getElementById("figures").textContent);
for (const el of document.querySelectorAll("[data-figure]")) {
  const f = figures[el.dataset.figure];
  Plotly.newPlot(el, f.data, f.layout, {responsive: true, displaylogo: false});
}
"""


@cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def _when(ms: int | None, missing: str = "") -> str:
    if ms is None:
        return missing
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


class _Page:
    """The page as it is written: HTML parts and the figures they show."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures: dict[str, charts.Figure] = {}

    def add(self, *parts: str) -> None:
        self.parts.extend(parts)

    def chart(self, key: str, figure: charts.Figure | None, empty: str) -> None:
        if figure is None:
            self.add(f'<p class="empty">no data: {_e(empty)}</p>')
            return
        self.figures[key] = figure
        self.add(f'<div class="chart" id="{_e(key)}" data-figure="{_e(key)}"></div>')

    def table(self, head: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> None:
        cls = [' class="num"' if i in numeric else "" for i in range(len(head))]
        self.add(
            "<table><thead><tr>"
            + "".join(f"<th{c}>{_e(h)}</th>" for c, h in zip(cls, head, strict=True))
            + "</tr></thead><tbody>"
        )
        for row in rows:
            self.add(
                "<tr>"
                + "".join(f"<td{c}>{v}</td>" for c, v in zip(cls, row, strict=True))
                + "</tr>"
            )
        self.add("</tbody></table>")


def _summary_row(name: str, s: RunSummary) -> list[str]:
    return [
        _e(name),
        f"{s.events:,}",
        f"{s.windows:,}",
        f"{s.invalid_events:,}",
        f"{s.late_events:,}",
        f"{s.labels:,}",
    ]


def _summary(page: _Page, report: Report) -> None:
    page.add('<h2 id="summary">Run summary</h2>')
    if not report.models:
        page.add('<p class="empty">no data: the run has no models</p>')
        return
    rows = [_summary_row(m.model, m.summary) for m in report.models]
    total = RunSummary(
        *(
            sum(getattr(m.summary, f) for m in report.models)
            for f in ("events", "windows", "invalid_events", "late_events", "labels")
        )
    )
    if len(report.models) > 1:
        rows.append(["<b>all</b>", *_summary_row("", total)[1:]])
    page.table(
        ["model", "events", "windows", "invalid events", "late events", "labels joined"],
        rows,
        {1, 2, 3, 4, 5},
    )
    if total.windows == 0:
        page.add('<p class="empty">no data: no window of the run starts in the range</p>')


def _changes(page: _Page, changes: Sequence[Change]) -> None:
    page.add("<h3>What changed</h3>")
    if not changes:
        page.add('<p class="empty">no data: no rule\'s condition held in any window</p>')
        return
    rows = [
        [
            _e(c.feature or "(model)"),
            _e(c.metric),
            f'<span class="{_e(c.severity)}">{_e(c.rule)}</span>',
            _e(f"{c.threshold:.4g}"),
            _e(_when(c.first_start_ms)),
            _e(f"{c.peak:.4g}"),
            _e(_when(c.peak_start_ms)),
            f"{c.windows_over:,}",
            _e(_when(c.fired_ms, "not fired")),
        ]
        for c in changes
    ]
    page.table(
        [
            "feature",
            "metric",
            "rule",
            "threshold",
            "first window over",
            "peak",
            "peak window",
            "windows over",
            "alert fired",
        ],
        rows,
        {3, 5, 7},
    )


def _features(page: _Page, m: ModelReport) -> None:
    page.add("<h3>Most drifted features: reference vs current</h3>")
    if not m.histograms and not m.categories:
        page.add(
            '<p class="empty">no data: no feature has both a reference and window sketches</p>'
        )
        return
    page.add('<div class="grid">')
    for h in m.histograms:
        page.chart(f"{m.model}-hist-{h.feature}", charts.histogram(h), "")
    for c in m.categories:
        page.chart(f"{m.model}-categories-{c.feature}", charts.category_bars(c), "")
    page.add("</div>")


def _contributors(page: _Page, m: ModelReport) -> None:
    page.add("<h3>Top contributors of the drift</h3>")
    if not m.contributors:
        page.add(
            '<p class="empty">no data: no drift attribution rows at the drifted features\' PSI '
            "peaks (PSI below metrics.attribution_min_psi, or attribution off)</p>"
        )
        return
    page.add('<div class="grid contributors">')
    for c in m.contributors:
        page.add(
            f'<div class="contributor" data-feature="{_e(c.feature)}">'
            f"<h4>{_e(c.feature)}: PSI {c.psi:.4g} in the window of {_e(_when(c.start_ms))}</h4>"
        )
        if c.bins:
            page.table(
                ["bin or category", "change of share of events", "PSI term", "of the PSI"],
                [
                    [
                        _e(b),
                        _e(f"{100 * shift:+.1f}%"),
                        _e(f"{term:.4g}"),
                        _e(f"{100 * term / c.psi:.0f}%" if c.psi > 0 else "-"),
                    ]
                    for b, term, shift in c.bins
                ],
                {1, 2, 3},
            )
        if c.segments:
            page.table(
                ["segment value", "share of the drift"],
                [[_e(s), _e(f"{100 * share:.0f}%")] for s, share in c.segments],
                {1},
            )
        page.add("</div>")
    page.add("</div>")


def _alerts(page: _Page, m: ModelReport) -> None:
    page.add("<h3>Alerts</h3>")
    page.chart(f"{m.model}-alerts", charts.alert_timeline(m.alerts), "no alert fired or resolved")
    fired = [a for a in m.alerts if a.status == "firing"]
    if not fired:
        return
    counts: dict[tuple[str, str], int] = {}
    for a in fired:
        for receiver in a.receivers or ("(none)",):
            counts[(receiver, a.severity)] = counts.get((receiver, a.severity), 0) + 1
    page.table(
        ["receiver", "severity", "alerts fired"],
        [[_e(r), _e(s), f"{n:,}"] for (r, s), n in sorted(counts.items())],
        {2},
    )


def _comparisons(page: _Page, m: ModelReport) -> None:
    """Canaries against the main version, shadows against their primary (docs/metrics.md)."""
    if not m.comparisons:
        return
    page.add("<h3>Versions and shadows</h3>")
    page.add(
        '<p class="note">per window, a canary against the version with the most events '
        "(vs=), a shadow against this model (shadow=); mean weighted by n</p>"
    )
    page.table(
        ["version", "against", "metric", "windows", "mean", "peak", "n"],
        [
            [_e(c.version), _e(c.segment), _e(c.metric), f"{c.windows}", f"{c.mean:.4g}",
             f"{c.peak:.4g}", f"{c.n:,}"]
            for c in m.comparisons
        ],
        {3, 4, 5, 6},
    )  # fmt: skip


def _heatmap(page: _Page, m: ModelReport, kind: str) -> None:
    metrics = sorted(set(heatmap.KINDS[kind]))
    page.add(f"<h3>Drift heatmap ({_e(kind)} per feature and window)</h3>")
    limits = [t for t in m.thresholds if t.metric in metrics]
    rules = "; ".join(
        f"rule {t.rule} ({t.severity}): {t.metric} {t.direction} {t.value:g}, cells marked ×"
        for t in limits
    )
    shown = " or ".join(metrics)
    page.add(f'<p class="note">{_e(rules or f"no rule on {shown} with a fixed threshold")}</p>')
    page.chart(
        f"{m.model}-heatmap",
        heatmap.drift_heatmap(m, kind),
        f"no {shown} in range (no reference?)",
    )


def _model(page: _Page, m: ModelReport, heatmap_kind: str) -> None:
    page.add(f'<section class="model" id="model-{_e(m.model)}">')
    page.add(
        f"<h2>Model {_e(m.model)}</h2>",
        f'<p class="meta">versions: {_e(", ".join(m.versions) or "none in range")}</p>',
    )
    _changes(page, m.changes)
    _heatmap(page, m, heatmap_kind)
    _features(page, m)
    _contributors(page, m)
    page.add("<h3>Data quality</h3>")
    page.chart(f"{m.model}-quality", charts.quality(m), "no quality metrics in range")
    page.add("<h3>Serving</h3>")
    page.chart(f"{m.model}-serving", charts.serving(m), "no serving metrics in range")
    page.add("<h3>Labels</h3>")
    page.chart(f"{m.model}-labels", charts.label_metrics(m), "no labels joined in range")
    page.add("<h3>Prediction drift</h3>")
    page.chart(f"{m.model}-prediction", charts.prediction_drift(m), "no prediction drift in range")
    _comparisons(page, m)
    _alerts(page, m)
    page.add("</section>")


def render(report: Report) -> str:
    """The whole page."""
    page = _Page()
    if report.start_ms is None and report.end_ms is None:
        span = "all windows"
    else:
        span = f"windows starting from {_when(report.start_ms, 'the first')} to " + _when(
            report.end_ms, "the last"
        )
    page.add(
        "<header><h1>drifthouse report</h1>",
        f'<p class="meta">run <code>{_e(report.run_id)}</code> · window <code>'
        f"{_e(report.window)}</code> · {_e(span)} · generated "
        f"{_e(_when(report.generated_ms))}"
        + (f" · store {_e(report.store)}" if report.store else "")
        + "</p>",
        "<nav>"
        + "".join(f'<a href="#model-{_e(m.model)}">{_e(m.model)}</a>' for m in report.models)
        + "</nav></header><main>",
    )
    _summary(page, report)
    for m in report.models:
        _model(page, m, report.heatmap)
    page.add("</main>")
    # No `<` at all in the script element (JSON reads `\u003c` as `<`): neither `</script>` nor
    # `<!--` in a name from the data can end it early or change how the page parses it.
    data = json.dumps(page.figures, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>drifthouse report: run {_e(report.run_id)}</title><style>{_STYLE}</style>"
        f"<script>{_plotly_js()}</script></head><body>"
        + "".join(page.parts)
        + f'<script id="figures" type="application/json">{data}</script>'
        f"<script>{_LOADER}</script></body></html>"
    )
