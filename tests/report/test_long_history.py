"""Years of hourly windows: the drift heatmap stays readable and the worst window still shows."""

from __future__ import annotations

from drifthouse.report.data import ModelReport, Point, RunSummary, Series, Threshold
from drifthouse.report.heatmap import MAX_COLUMNS, drift_heatmap

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01
YEARS = 5


def _model(spike_at: int) -> ModelReport:
    hours = YEARS * 365 * 24
    quiet = tuple(Point(T0 + i * HOUR, 0.01, 100) for i in range(hours))
    spiked = tuple(
        Point(p.start_ms, 0.9 if i == spike_at else p.value, p.n) for i, p in enumerate(quiet)
    )
    return ModelReport(
        model="m",
        versions=("1",),
        summary=RunSummary(
            events=100 * hours, windows=hours, invalid_events=0, late_events=0, labels=0
        ),
        series={("psi", "a"): Series("psi", "a", quiet), ("psi", "b"): Series("psi", "b", spiked)},
        thresholds=(Threshold("data-drift", "psi", 0.25, ">", "warning"),),
        histograms=(),
        categories=(),
        alerts=(),
        changes=(),
    )


def test_five_years_of_hourly_windows_fold_into_columns_that_keep_the_worst_window() -> None:
    spike = 30_001
    figure = drift_heatmap(_model(spike))
    assert figure is not None
    cells, marks = figure["data"]
    assert len(cells["x"]) <= MAX_COLUMNS
    assert len(cells["z"][0]) == len(cells["x"])
    # Feature b's worst window is its column's colour and is marked past the threshold.
    worst = max(v for v in cells["z"][1] if v is not None)
    assert worst == 0.9
    assert cells["z"][0] == [0.01] * len(cells["x"])
    assert marks["y"] == ["b"]
    # The hover names the span the column folds and the window that peaked.
    column = cells["z"][1].index(0.9)
    text = cells["text"][1][column]
    assert "0.9" in text
    from drifthouse.report.charts import stamp

    assert stamp(T0 + spike * HOUR) in text


def test_a_few_windows_keep_a_column_each() -> None:
    model = _model(3)
    short = {k: Series(s.metric, s.feature, s.points[:48]) for k, s in model.series.items()}
    figure = drift_heatmap(
        ModelReport(**{**model.__dict__, "series": short})  # type: ignore[arg-type]
    )
    assert figure is not None
    assert len(figure["data"][0]["x"]) == 48
    assert figure["data"][0]["text"][1][3] == "0.9"


def test_a_line_over_years_keeps_its_spike_at_its_own_window() -> None:
    from drifthouse.report.charts import MAX_POINTS, quality

    model = _model(30_001)
    spiked = model.series[("psi", "b")]
    figure = quality(
        ModelReport(
            **{
                **model.__dict__,
                "series": {("missing_rate", "b"): Series("missing_rate", "b", spiked.points)},
            }  # type: ignore[arg-type]
        )
    )
    assert figure is not None
    (line,) = figure["data"]
    assert len(line["x"]) <= MAX_POINTS
    from drifthouse.report.charts import stamp

    assert line["y"][line["x"].index(stamp(T0 + 30_001 * HOUR))] == 0.9
    assert sorted(line["x"]) == line["x"]


def test_five_years_of_hourly_windows_render_in_a_page_of_a_few_megabytes() -> None:
    from drifthouse.report.data import Report
    from drifthouse.report.page import render

    model = _model(30_001)
    points = model.series[("psi", "a")].points
    series = dict(model.series)
    for metric in ("events", "latency_p95", "error_rate_5xx"):
        series[(metric, "")] = Series(metric, "", points)
    for feature in "abcdefghij":
        for metric in ("missing_rate", "type_error", "out_of_range", "psi"):
            series[(metric, feature)] = Series(metric, feature, points)
    page = render(
        Report(
            run_id="r", window="1h", start_ms=None, end_ms=None, generated_ms=T0, store="s",
            models=(ModelReport(**{**model.__dict__, "series": series}),),  # type: ignore[arg-type]
        )
    )  # fmt: skip
    # Plotly's script is about 4.6 MB of it; the 63 MB of one point per window is gone.
    assert len(page) < 8_000_000
