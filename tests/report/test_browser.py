"""The demo's report in a real headless browser: Debian's chromium (scripts/system-deps),
driven by Playwright, with the network cut off. Screenshots go to ``REPORT_SCREENSHOTS`` (a
folder; default a temporary one) to be looked at."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.report.conftest import DemoRun

# Per chart element, what counts as drawn data: heatmap cells (an image of them), bars,
# points of scatter traces, line paths.
_DRAWN = """el => ({
  traces: el.querySelectorAll('g.trace').length,
  heatmap: el.querySelectorAll('.heatmaplayer image').length,
  bars: el.querySelectorAll('.barlayer .point path').length,
  points: el.querySelectorAll('.scatterlayer .point').length,
  lines: [...el.querySelectorAll('.scatterlayer path.js-line')]
           .filter(p => (p.getAttribute('d') || '').length > 10).length,
  width: el.getBoundingClientRect().width,
  height: el.getBoundingClientRect().height,
})"""


@dataclass
class Loaded:
    page: Page
    console: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    shots: Path = Path()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium is not None, "needs Debian's chromium: run scripts/system-deps"
    with sync_playwright() as p:
        yield _launch(p, chromium)


def _launch(p: Playwright, chromium: str) -> Browser:
    return p.chromium.launch(executable_path=chromium)


@pytest.fixture(scope="module")
def loaded(
    browser: Browser, demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loaded]:
    """The demo's report, opened once for the module with every non-file request refused."""
    shots = Path(os.environ.get("REPORT_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    state = Loaded(page, shots=shots)
    page.on(
        "console",
        lambda m: (
            state.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda e: state.console.append(f"pageerror: {e}"))

    def refuse_network(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith("file:"):
            route.continue_()  # type: ignore[attr-defined]
        else:
            state.blocked.append(url)
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", refuse_network)
    page.goto(demo_run.report.as_uri())
    page.wait_for_function(
        "document.querySelectorAll('.chart').length > 0 && [...document.querySelectorAll('.chart')]"
        ".every(el => el.classList.contains('js-plotly-plot'))"
    )
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "report-full.png"), full_page=True)
    yield state
    page.close()


def test_the_report_loads_offline_without_console_errors(loaded: Loaded) -> None:
    assert loaded.blocked == []  # it asked for nothing beyond the file
    assert loaded.console == []
    assert loaded.page.title() == "drifthouse report: run demo"


def test_every_chart_draws_its_data(loaded: Loaded) -> None:
    charts = loaded.page.query_selector_all(".chart")
    keys = [c.get_attribute("id") or "" for c in charts]
    assert len(keys) >= 14, keys  # two models: heatmap, histograms, quality, serving, ...
    for chart, key in zip(charts, keys, strict=True):
        drawn = chart.evaluate(_DRAWN)
        assert drawn["width"] > 300, (key, drawn)
        assert drawn["height"] > 150, (key, drawn)
        assert drawn["traces"] > 0, (key, drawn)
        if key.endswith("-heatmap"):
            assert drawn["heatmap"] == 1, (key, drawn)
        elif "-hist-" in key or "-categories-" in key:
            assert drawn["bars"] >= 6, (key, drawn)
        else:
            assert drawn["points"] + drawn["lines"] > 0, (key, drawn)


def test_the_heatmap_marks_the_features_the_demo_drifts(loaded: Loaded, demo_run: DemoRun) -> None:
    assert demo_run.drifted == {"fraud": {"amount", "device"}, "eta": {"distance_km"}}
    for model, drifted in demo_run.drifted.items():
        chart = loaded.page.locator(f"#{model}-heatmap")
        marked = chart.evaluate("el => el.data.filter(t => t.type === 'scatter').flatMap(t => t.y)")
        assert set(marked) == drifted, model
        # and the marks are drawn: one point per marked cell
        drawn = chart.evaluate("el => el.querySelectorAll('.scatterlayer .point').length")
        assert drawn == len(marked) > 0
        chart.screenshot(path=str(loaded.shots / f"{model}-heatmap.png"))


def test_a_hover_shows_the_exact_value(loaded: Loaded) -> None:
    page = loaded.page
    chart = page.locator("#fraud-heatmap")
    chart.scroll_into_view_if_needed()
    # The cell of the window where the PSI of amount peaked.
    values = chart.evaluate(
        "el => { const h = el.data[0]; const r = h.y.indexOf('amount');"
        " const row = h.z[r]; let best = 0;"
        " row.forEach((v, i) => { if (v !== null && v > row[best]) best = i; });"
        " return {x: h.x[best], z: row[best], col: best, cols: row.length, rows: h.y.length,"
        " r: r}; }"
    )
    # Where plotly draws that cell, from its own axes (page coordinates of the plot area).
    at = chart.evaluate(
        "(el, v) => { const L = el._fullLayout, xa = L.xaxis, ya = L.yaxis;"
        " const r = el.querySelector('.nsewdrag').getBoundingClientRect();"
        " return {x: r.left + xa.l2p(xa.d2l(v.x)), y: r.top + ya.l2p(v.r)}; }",
        values,
    )
    x, y = at["x"], at["y"]
    page.mouse.move(x, y)
    hover = page.locator("#fraud-heatmap .hovertext")
    hover.wait_for(timeout=5_000)
    text = hover.evaluate(
        "el => [...el.querySelectorAll('tspan.line')].map(t => t.textContent).join(' | ')"
    )
    page.screenshot(path=str(loaded.shots / "hover.png"))
    assert "feature amount" in text
    assert f"psi {values['z']}" in text.split(" | "), text


def test_the_top_contributors_of_each_drifted_feature_are_shown(
    loaded: Loaded, demo_run: DemoRun
) -> None:
    with_segments = []
    for model, drifted in demo_run.drifted.items():
        section = loaded.page.locator(f"#model-{model} .contributors")
        for feature in drifted:
            block = section.locator(f'.contributor[data-feature="{feature}"]')
            block.scroll_into_view_if_needed()
            assert block.is_visible(), (model, feature)
            tables = block.locator("table")
            head = tables.first.locator("thead th").all_inner_texts()
            assert head == [
                "bin or category",
                "change of share of events",
                "PSI term",
                "of the PSI",
            ]
            cells = tables.first.locator("tbody tr").first.locator("td").all_inner_texts()
            assert cells[0], (model, feature)
            assert cells[1].endswith("%")
            assert float(cells[2]) > 0
            # The segment values carrying the feature's drift, when its model has segments.
            if tables.count() > 1:
                segments = tables.nth(1)
                assert segments.locator("thead th").all_inner_texts() == [
                    "segment value",
                    "share of the drift",
                ]
                row = segments.locator("tbody tr").first.locator("td").all_inner_texts()
                assert "=" in row[0], (model, feature, row)
                assert row[1].endswith("%")
                with_segments.append((model, feature))
        section.screenshot(path=str(loaded.shots / f"{model}-contributors.png"))
    assert with_segments, "no drifted feature names the segment values carrying its drift"
