"""Drift attribution on data this project did not make: river's bundled datasets, shifted by
splitting the rows on one feature (the reference takes one side, the window the other). The
attribution must name the bins and categories the split moved."""

from __future__ import annotations

import numpy as np
import pytest
from river import datasets

from drifthouse.config import MetricsConfig
from drifthouse.detectors.categorical import OTHER_LABEL, CategoricalBlock
from drifthouse.detectors.numeric import NumericBatch, NumericBlock
from tests.detectors.strategies import make_profile


def _by(results, metric):  # type: ignore[no-untyped-def]
    return {(r.feature, r.bin): r.value for r in results if r.metric == metric}


def test_trump_approval_split_on_gallup_names_its_upper_bin() -> None:
    rows = [x for x, _ in datasets.TrumpApproval()]
    names = ["gallup", "ipsos", "morning_consult", "rasmussen", "you_gov"]
    values = np.array([[float(r[n]) for n in names] for r in rows])
    median = float(np.median(values[:, 0]))
    low, high = values[values[:, 0] < median], values[values[:, 0] >= median]
    profile = make_profile({n: low[:, j] for j, n in enumerate(names)})
    block = NumericBlock.from_profile(profile)
    state = block.update(block.empty(), NumericBatch(high))
    psi = {r.feature: r.value for r in block.evaluate(state) if r.metric == "psi"}
    assert max(psi, key=lambda f: psi[f]) == "gallup"
    # Every window value is at or above the reference's largest: all of it lands in the open
    # upper bin, and every other bin empties.
    every = block.contributions(state, top_k=100, min_psi=0.1)
    shifts = {b: v for (f, b), v in _by(every, "mass_shift").items() if f == "gallup"}
    upper = next(b for b in shifts if b.endswith(", +inf)"))
    ref = block.coarse_counts(block.reference, 0)
    assert shifts[upper] == pytest.approx(1.0 - ref[-1] / len(low), abs=1e-12)
    assert all(v < 0 for b, v in shifts.items() if b != upper)
    # PSI's terms rank first the bins that emptied, the fullest first: a bin losing its share p
    # costs p * ln(p / eps), more than the bin gaining the same mass.
    terms = {b: v for (f, b), v in _by(every, "psi_contribution").items() if f == "gallup"}
    emptied = sorted((b for b in terms if b != upper), key=lambda b: shifts[b])
    top3 = [
        r.bin
        for r in block.contributions(state, top_k=3, min_psi=0.1)
        if r.feature == "gallup" and r.metric == "psi_contribution"
    ]
    assert top3 == emptied[:3]
    assert sum(terms.values()) == pytest.approx(psi["gallup"], abs=1e-12)


def test_phishing_split_on_domain_age_puts_the_drift_in_other() -> None:
    rows = [x for x, _ in datasets.Phishing()]
    old = [r for r in rows if r["age_of_domain"] == 1]
    young = [r for r in rows if r["age_of_domain"] != 1]
    assert old
    assert young

    def column(rs, name):  # type: ignore[no-untyped-def]
        return [str(r[name]) for r in rs]

    cats = ["age_of_domain", "long_url", "https"]
    profile = make_profile({n: column(old, n) for n in cats}, settings=MetricsConfig())
    block = CategoricalBlock.from_profile(profile)
    codes = np.column_stack([block.codes_for(j, column(young, n)) for j, n in enumerate(cats)])
    state = block.update(block.empty(), codes)
    out = block.contributions(state, top_k=3, min_psi=0.1)
    psi_c = _by(out, "psi_contribution")
    mine = {b: v for (f, b), v in psi_c.items() if f == "age_of_domain"}
    # The window's domain ages were never seen in the reference: all of it moved to __other__.
    assert max(mine, key=lambda b: mine[b]) == OTHER_LABEL
    assert _by(out, "mass_shift")[("age_of_domain", OTHER_LABEL)] == pytest.approx(1.0)
    psi = {r.feature: r.value for r in block.evaluate(state) if r.metric == "psi"}
    assert sum(mine.values()) == pytest.approx(psi["age_of_domain"], abs=1e-12)
