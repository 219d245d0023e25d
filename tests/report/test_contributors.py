"""The report's top contributors (docs/report.md): for the features the demo drifts, the bins
with the largest PSI terms at the feature's PSI peak, read from the attribution rows the
pipeline wrote, equal to the terms of the stored sketches at that window."""

from __future__ import annotations

import numpy as np
import pytest

from drifthouse.detectors.attribution import bin_labels
from drifthouse.detectors.stats import mass_shift, psi_terms
from drifthouse.report.data import Report
from tests.report.conftest import DemoRun


def test_the_drifted_numeric_features_show_the_bins_their_sketches_give(
    built: Report, demo_run: DemoRun
) -> None:
    checked = 0
    for m in built.models:
        hists = {h.feature: h for h in m.histograms}
        for c in m.contributors:
            if c.feature not in hists:
                continue
            h = hists[c.feature]
            assert c.start_ms == h.peak_start_ms
            ref, cur = np.array(h.reference), np.array(h.peak)
            terms = psi_terms(ref_counts=ref, cur_counts=cur, eps=1e-4)
            shifts = mass_shift(ref_counts=ref, cur_counts=cur)
            labels = bin_labels(h.edges)
            top = sorted(range(len(terms)), key=lambda i: (-terms[i], i))[: len(c.bins)]
            assert [b for b, _, _ in c.bins] == [labels[i] for i in top]
            for (_, term, shift), i in zip(c.bins, top, strict=True):
                assert term == pytest.approx(float(terms[i]), rel=1e-9, abs=1e-12)
                assert shift == pytest.approx(float(shifts[i]), abs=1e-12)
            assert sum(t for _, t, _ in c.bins) <= c.psi + 1e-12
            checked += 1
    assert checked >= 1


def test_every_injected_drift_names_its_contributors(built: Report, demo_run: DemoRun) -> None:
    for model, features in demo_run.drifted.items():
        m = next(x for x in built.models if x.model == model)
        named = {c.feature for c in m.contributors if c.bins}
        assert features <= named, (model, features, named)
        for c in m.contributors:
            assert len(c.bins) <= 3
            assert c.psi >= 0.1  # attribution_min_psi: rows only where PSI reached it


def test_the_page_has_a_table_per_drifted_feature(demo_run: DemoRun, built: Report) -> None:
    page = demo_run.report.read_text()
    assert "Top contributors of the drift" in page
    for m in built.models:
        for c in m.contributors:
            assert f'data-feature="{c.feature}"' in page
            if c.bins:
                assert c.bins[0][0].replace("<", "&lt;") in page
