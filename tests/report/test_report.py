"""``drifthouse report`` and the demo's report: what the page holds, read back from the store,
and clear errors for what the store does not have."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import structlog

from drifthouse.cli import main
from drifthouse.config import load_config
from drifthouse.detectors.stats import psi
from drifthouse.report import ReportRequest, build_report
from drifthouse.report.data import Report
from drifthouse.sinks import open_store
from tests.report.conftest import DemoRun


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield None
    structlog.reset_defaults()


def _figures(page: str) -> dict[str, dict[str, object]]:
    found = re.search(r'<script id="figures" type="application/json">(.*?)</script>', page, re.S)
    assert found is not None
    figures: dict[str, dict[str, object]] = json.loads(found.group(1))
    return figures


def test_the_demo_ends_by_writing_its_report_and_printing_the_path(demo_run: DemoRun) -> None:
    assert demo_run.report.is_file()
    assert demo_run.summary.report_path == demo_run.report
    assert str(demo_run.report) in demo_run.printed.replace("\n", "")
    page = demo_run.report.read_text()
    assert "drifthouse report" in page
    assert "<code>demo</code>" in page


def test_the_page_is_self_contained(demo_run: DemoRun) -> None:
    page = demo_run.report.read_text()
    assert page.count("plotly.js v") == 1  # inlined once
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page)
    size = demo_run.report.stat().st_size
    assert 4_000_000 < size < 8_000_000, size


def test_every_figure_is_a_valid_plotly_figure(demo_run: DemoRun) -> None:
    figures = _figures(demo_run.report.read_text())
    kinds = {key.split("-", 1)[1].split("-")[0] for key in figures}
    assert {"heatmap", "hist", "quality", "serving", "labels", "prediction", "alerts"} <= kinds
    for key, figure in figures.items():
        go.Figure(figure)  # raises on any attribute plotly.js does not know
        assert figure["data"], key


def test_what_changed_ranks_the_injected_drifts_with_the_rule_that_fired(
    built: Report, demo_run: DemoRun
) -> None:
    for m in built.models:
        drift = {c.feature for c in m.changes if c.metric == "psi" and c.rule == "data-drift"}
        assert demo_run.drifted[m.model] <= drift, m.model
        for c in m.changes:
            if c.feature in demo_run.drifted[m.model] and c.metric == "psi":
                assert c.peak > c.threshold == 0.25
                assert c.first_start_ms <= c.peak_start_ms
                assert c.fired_ms is not None  # the alert fired (in some window spec)
        fired_first = [c.fired_ms is not None for c in m.changes]
        assert fired_first == sorted(fired_first, reverse=True)


def test_the_histograms_are_the_sketches_on_the_reference_bins(built: Report) -> None:
    """The peak window's counts on the reference's PSI bins give back the PSI stored for it."""
    fraud = next(m for m in built.models if m.model == "fraud")
    amount = next(h for h in fraud.histograms if h.feature == "amount")
    assert len(amount.reference) == len(amount.current) == len(amount.edges) + 1
    stored = fraud.get("psi", "amount")
    assert stored is not None
    at_peak = next(p for p in stored.points if p.start_ms == amount.peak_start_ms)
    assert psi(ref_counts=np.array(amount.reference), cur_counts=np.array(amount.peak)) == (
        pytest.approx(at_peak.value, abs=1e-9)
    )
    assert sum(amount.current) == sum(p.n for p in stored.points)


def test_the_summary_counts_the_run(built: Report, demo_run: DemoRun) -> None:
    assert sum(m.summary.events for m in built.models) == demo_run.summary.events
    for m in built.models:
        assert m.summary.windows == 36  # 1.5 days of 1h windows
        assert 0 < m.summary.labels <= m.summary.events


def _report(config: Path, out: Path, *args: str) -> int:
    return main(["report", "-c", str(config), "--out", str(out), *args])


def test_a_run_that_does_not_exist_is_a_clear_error(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    assert _report(demo_run.summary.config_path, out, "--run-id", "no-such-run") == 2
    said = capsys.readouterr().err
    assert "--run-id 'no-such-run': the store has no metrics of that run" in said
    assert "demo" in said  # the runs it has
    assert not out.exists()


def test_a_model_not_in_the_run_is_a_clear_error(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _report(demo_run.summary.config_path, tmp_path / "r.html", "--model", "nope") == 2
    said = capsys.readouterr().err
    assert "--model 'nope': run 'demo' has no metrics of that model" in said
    assert "eta, fraud" in said


def test_an_empty_range_says_no_data(demo_run: DemoRun, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert _report(demo_run.summary.config_path, out, "--from", "2030-01-01") == 0
    page = out.read_text()
    assert "no data: no window of the run starts in the range" in page
    assert "no data: no psi in range" in page
    assert _figures(page) == {}


def test_a_model_without_labels_says_no_data_for_labels(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A replay of the reference day's predictions of fraud alone, without labels."""
    folder = demo_run.summary.folder
    config = str(demo_run.summary.config_path)
    source = f"file:{folder / 'reference' / 'fraud.jsonl'}"
    args = ["--source", source, "--to", "2026-01-01T03:00:00Z", "--run-id", "no-labels"]
    assert main(["replay", "-c", config, *args]) == 0
    out = tmp_path / "r.html"
    try:
        assert _report(demo_run.summary.config_path, out, "--run-id", "no-labels") == 0
    finally:  # the session's store is shared: leave only the demo's run
        assert main(["runs", "delete", "no-labels", "-c", config, "--yes"]) == 0
    page = out.read_text()
    assert "no data: no labels joined in range" in page
    figures = _figures(page)
    assert "fraud-heatmap" in figures
    assert "fraud-labels" not in figures
    assert "report of run no-labels (fraud, window 1h)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "said"),
    [
        pytest.param(
            ["--window", "2h"], "--window must be one of 1h, 15m/5m (got '2h')", id="window"
        ),
        pytest.param(
            ["--from", "2026-01-02", "--to", "2026-01-01"], "--from must be before --to", id="range"
        ),
        pytest.param(
            ["--heatmap", "ks"], "--heatmap must be one of psi, p-value (got 'ks')", id="heatmap"
        ),
        pytest.param(["--from", "yesterday"], "--from must be an RFC 3339 time", id="time"),
        pytest.param(
            ["--feature", "nope"],
            "--feature 'nope': no model of run 'demo' has that feature",
            id="feature",
        ),
    ],
)
def test_bad_options_are_clear_errors(
    demo_run: DemoRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    said: str,
) -> None:
    out = tmp_path / "r.html"
    assert _report(demo_run.summary.config_path, out, *args) == 2
    assert said in capsys.readouterr().err.replace("\n", " ")
    assert not out.exists()


def test_a_picked_feature_is_drawn(demo_run: DemoRun, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert (
        _report(demo_run.summary.config_path, out, "--model", "fraud", "--feature", "n_items") == 0
    )
    assert "fraud-hist-n_items" in _figures(out.read_text())


def test_the_range_keeps_the_windows_that_start_in_it(demo_run: DemoRun) -> None:
    config = load_config(demo_run.summary.config_path)
    client = open_store(config.store_dsn(), config.store.database)
    six_hours = ReportRequest(
        run_id="demo", models=("eta",), start_ms=1_767_247_200_000, end_ms=1_767_268_800_000
    )  # 2026-01-01T06:00Z to 12:00Z
    try:
        report = build_report(client, config, six_hours)
    finally:
        client.close()
    (eta,) = report.models
    assert eta.summary.windows == 6
    starts = {p.start_ms for s in eta.series.values() for p in s.points}
    assert min(starts) == six_hours.start_ms
    assert max(starts) == 1_767_265_200_000  # 11:00, the last window that starts before 12:00


def test_the_heatmap_can_show_the_drift_tests_p_values(demo_run: DemoRun, tmp_path: Path) -> None:
    """KS p-values for numeric features, chi-squared ones for categorical features, coloured by
    -log10(p) (a small p-value bright, as a large PSI); the hover keeps the p-value itself."""
    out = tmp_path / "r.html"
    args = ["--model", "fraud", "--heatmap", "p-value"]
    assert _report(demo_run.summary.config_path, out, *args) == 0
    cells = _figures(out.read_text())["fraud-heatmap"]["data"][0]  # type: ignore[index]
    assert (cells["zmin"], cells["zmax"]) == (0, 6.0)
    rows = dict(zip(cells["y"], (r[0] for r in cells["customdata"]), strict=True))
    assert rows["amount"] == "ks_pvalue"
    assert rows["device"] == "chi2_pvalue"
    for text, colour in zip(cells["text"], cells["z"], strict=True):
        for t, z in zip(text, colour, strict=True):
            if t:
                assert 0 <= float(t) <= 1
                assert z == pytest.approx(-math.log10(max(float(t), 1e-300)))
    device = [float(t) for t in cells["text"][cells["y"].index("device")] if t]
    assert min(device) < 1e-6  # a new category: certain drift
