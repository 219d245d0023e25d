"""The figures of ``bench/bench_false_alarms.py`` (docs/statistics.md "False alarms"): what its
counting helpers make of the rows drifthouse writes, on small synthetic streams."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_false_alarms as bench


def _gaussian(rows: int, seed: int, *, correlated: bool) -> bench.Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    if correlated:  # three features moving together
        cols = [x, x + 0.1 * rng.normal(size=rows), x + 0.1 * rng.normal(size=rows)]
    else:  # about the same marginals, moving apart
        cols = [x, *(rng.normal(size=rows) * np.sqrt(1.01) for _ in range(2))]
    return bench.Dataset("g", {f: c for f, c in zip("abc", cols, strict=True)}, {}, True)


def test_a_model_wide_rule_alarms_once_per_model_window() -> None:
    monitor = bench.Monitor(_gaussian(4_000, 1, correlated=True))
    assert monitor.multivariate
    windows = [
        _gaussian(1_000, 10 + i, correlated=i < 4) for i in range(8)
    ]  # the correlation breaks at window 4
    rule_set = bench._rule_sets()[bench.MULTIVARIATE]
    got = bench.fired(rule_set.rules, rule_set.rows(monitor.stream(windows)))
    assert got.raised == [(5, "")]  # two windows in a row: one window after the onset
    assert got.firing == [frozenset()] * 5 + [frozenset({""})] * 3
    assert got.firing_windows == 3  # model-windows, whatever the three features do
    assert got.first("", 4) == 1
    assert got.in_alarm("", 4) == 3


def test_a_trailing_baseline_raises_a_step_then_absorbs_it() -> None:
    monitor = bench.Monitor(_gaussian(4_000, 2, correlated=False))
    windows = []
    for i in range(16):
        w = _gaussian(1_000, 20 + i, correlated=False)
        if i >= 4:
            w = bench.Dataset("g", {**w.numeric, "a": w.numeric["a"] + 1.0}, {}, True)
        windows.append(w)
    rows = monitor.stream(windows)
    assert not any(r.metric == "psi" for r in rows[0].trailing)  # nothing before it
    assert any(r.metric == "psi" for r in rows[0].fixed)
    sets = bench._rule_sets()
    fixed, trailing = (
        bench.fired(sets[k].rules, sets[k].rows(rows))
        for k in (bench.SHIPPED, bench.SHIPPED_TRAILING)
    )
    assert fixed.first("a", 4) == trailing.first("a", 4) == 1
    assert fixed.in_alarm("a", 4) == 11  # windows 5 to 15
    # Fires from window 5, then clears once the baseline (5 windows) is mostly the new level.
    assert 1 <= trailing.in_alarm("a", 4) <= bench.TRAILING
    assert not trailing.firing[-1]
    assert {f for _, f in fixed.raised} == {f for _, f in trailing.raised} == {"a"}
