"""The report on data we did not generate: river's bundled S&P 500 daily returns, five years
(2013-02 to 2018-02) of one event a day, on an automatic reference of the first year, in
weekly windows. The CLI runs in fresh processes (one embedded store per process)."""

from __future__ import annotations

import json
import re

import pytest

from tests.cli_process import run_cli
from tests.datasets import replay_sp500


@pytest.fixture(scope="module")
def sp500_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("sp500")
    replay_sp500(folder, "sp500")
    written = run_cli(
        "report", "-c", "drifthouse.yaml", "--run-id", "sp500", "--out", "report.html",
        cwd=folder,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    return (folder / "report.html").read_text()


def _figures(page: str) -> dict[str, dict[str, object]]:
    found = re.search(r'<script id="figures" type="application/json">(.*?)</script>', page, re.S)
    assert found is not None
    figures: dict[str, dict[str, object]] = json.loads(found.group(1))
    return figures


def test_an_automatic_reference_is_drawn_against_the_windows(sp500_report: str) -> None:
    """The reference an automatic profile stored (version ``auto``) is the reference of every
    version of the model: the most drifted features are drawn on its bins."""
    assert "no feature has both a reference and window sketches" not in sp500_report
    hists = [k for k in _figures(sp500_report) if k.startswith("sp500-hist-")]
    assert hists, "no reference-vs-current histogram"
    for key in hists:
        traces = {str(t["name"]).split(" ")[0]: t["y"] for t in _figures(sp500_report)[key]["data"]}  # type: ignore[attr-defined]
        # The reference's PSI bins are its deciles: a tenth of the first year in each.
        assert traces["reference"] == pytest.approx([0.1] * 10, abs=0.01)
        assert sum(traces["whole"]) == pytest.approx(1.0)
        assert sum(traces["peak"]) == pytest.approx(1.0)
