"""The page keeps names from the data as text: a feature, model or rule named like markup
neither breaks the page nor runs."""

from __future__ import annotations

import json
import re

from drifthouse.report.data import (
    AlertEvent,
    Change,
    ModelReport,
    Point,
    Report,
    RunSummary,
    Series,
    Threshold,
)
from drifthouse.report.page import render

EVIL = "</script><script>alert(1)</script><!--<script>"


def _report() -> Report:
    points = tuple(Point(3_600_000 * i, 0.1 * i, 100) for i in range(4))
    series = {
        ("psi", EVIL): Series("psi", EVIL, points),
        ("events", ""): Series("events", "", points),
    }
    model = ModelReport(
        model=EVIL,
        versions=(EVIL,),
        summary=RunSummary(events=400, windows=4, invalid_events=0, late_events=0, labels=0),
        series=series,
        thresholds=(Threshold(EVIL, "psi", 0.25, ">", "warning"),),
        histograms=(),
        categories=(),
        alerts=(
            AlertEvent(0, 0, 3_600_000, EVIL, "warning", "firing", EVIL, "psi", 0.3, 0.25, (EVIL,)),
        ),
        changes=(Change(EVIL, EVIL, "psi", "warning", 0.25, 0, 0, 0.3, 1, 3_600_000),),
    )
    return Report(EVIL, "1h", None, None, 0, EVIL, (model,))


def test_names_from_the_data_stay_text() -> None:
    page = render(_report())
    body = page.split("</head>", 1)[1]
    # the page's own scripts only: the figures' JSON and the loader
    assert body.count("<script") == 2
    assert "<script>alert(1)" not in body
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in body  # the tables show it as text
    figures = re.search(r'<script id="figures" type="application/json">(.*?)</script>', body, re.S)
    assert figures is not None
    assert EVIL in json.loads(figures.group(1))[f"{EVIL}-heatmap"]["data"][0]["y"]
