from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from drifthouse.detectors.stats import psi
from drifthouse.errors import UsageError
from drifthouse.sinks.clickhouse import ClickHouseSink
from drifthouse.sinks.query import load_recipes, run_recipe, run_sql
from tests.sinks import rowgen

HOURS = 6


@pytest.fixture
def filled(store_client: Any, database: str) -> Any:
    """A store with realistic results, every window written twice (a replay with the same run id)."""
    metrics, sketches, alerts = rowgen.results(hours=HOURS)
    sink = ClickHouseSink(store_client, database=database)
    for _ in range(2):
        sink.write([*metrics, *sketches, *alerts])
        sink.flush()
    return store_client


def _ms(dt: int) -> datetime:
    return datetime.fromtimestamp(dt / 1000, tz=UTC)


def test_psi_range_of_one_window_is_the_pipeline_psi(filled: Any) -> None:
    end = rowgen.now_hour()
    metrics, _, _ = rowgen.results(hours=HOURS)
    written = {(m.window_start, m.feature): m.value for m in metrics
               if m.model == "fraud" and m.model_version == "2.0.0" and m.metric == "psi"}  # fmt: skip
    for h in (1, HOURS):
        start = end - h * rowgen.HOUR
        params = {
            "model": "fraud",
            "model_version": "2.0.0",
            "start": _ms(start),
            "end": _ms(start + rowgen.HOUR),
        }
        columns, rows = run_recipe(filled, "psi_range", params)
        assert columns == ["feature", "bins", "n", "psi"]
        got = {r[0]: (r[1], r[2], r[3]) for r in rows}
        assert set(got) == {"amount", "age"}
        for feature, (bins, n, value) in got.items():
            assert bins == 10
            assert n == rowgen.PER_WINDOW  # the window was written twice, counted once
            assert value == pytest.approx(written[(start, feature)], rel=1e-9, abs=1e-12)


def test_psi_range_over_many_windows_merges_their_histograms(filled: Any) -> None:
    end = rowgen.now_hour()
    start = end - HOURS * rowgen.HOUR
    params = {"model": "fraud", "model_version": "2.0.0", "start": _ms(start), "end": _ms(end)}
    _, rows = run_recipe(filled, "psi_range", params)
    got = {r[0]: r[3] for r in rows}
    prof = rowgen.profile("fraud", "2.0.0")
    for feature in ("amount", "age"):
        f = prof.feature(feature)
        values = np.concatenate(
            [
                rowgen.window_values("fraud", "2.0.0", start + h * rowgen.HOUR, h)[feature]
                for h in range(HOURS)
            ]
        )
        expected = psi(ref_counts=f.psi_counts, cur_counts=rowgen.bin_counts(f.psi_edges, values))
        assert got[feature] == pytest.approx(expected, rel=1e-9)
    assert got["amount"] > 0.1 > got["age"]


def test_every_recipe_runs_and_returns_rows(filled: Any) -> None:
    params: dict[str, dict[str, Any]] = {
        "psi_range": {
            "model": "fraud",
            "model_version": "2.0.0",
            "start": _ms(rowgen.now_hour() - 24 * rowgen.HOUR),
            "end": _ms(rowgen.now_hour()),
        },
        "top_drifting_features": {"model": "fraud"},
        "quality_trend": {"model": "fraud"},
        "alert_history": {},
        "compare_versions": {"model": "fraud", "version_a": "1.0.0", "version_b": "2.0.0"},
        "metric_series": {"model": "churn", "metric": "latency_p95"},
        "segment_breakdown": {"model": "fraud"},
    }
    recipes = load_recipes()
    assert set(recipes) == set(params)
    for name in recipes:
        columns, rows = run_recipe(filled, name, params[name])
        assert columns, name
        assert rows, name


def test_segment_breakdown_puts_the_model_first_then_values_by_peak(filled: Any) -> None:
    columns, rows = run_recipe(filled, "segment_breakdown", {"model": "fraud"})
    got = [dict(zip(columns, r, strict=True)) for r in rows]
    assert [r["segment"] for r in got] == ["", "country=US", "country=DE"]
    assert got[1]["total_n"] + got[2]["total_n"] == got[0]["total_n"]
    assert got[0]["peak"] > got[1]["peak"] > got[2]["peak"]
    assert {r["windows"] for r in got} == {HOURS * 2}  # two versions x HOURS windows


def test_top_drifting_features_counts_each_window_once(filled: Any) -> None:
    _, rows = run_recipe(filled, "top_drifting_features", {"model": "fraud"})
    assert rows[0][0] == "amount"
    assert {r[5] for r in rows} == {HOURS * 2}  # two versions x HOURS windows, not doubled


def test_alert_history_has_one_row_per_state_change(filled: Any) -> None:
    _, rows = run_recipe(filled, "alert_history", {})
    assert [(r[1], r[3]) for r in rows] == [
        ("resolved", "data-drift"),
        ("firing", "serving-errors"),
        ("firing", "data-drift"),
    ]


def test_recipe_parameters_are_checked() -> None:
    recipe = load_recipes()["top_drifting_features"]
    assert recipe.bind({"model": "m"})["days"] == "7"
    with pytest.raises(UsageError, match="--param model="):
        recipe.bind({})
    with pytest.raises(UsageError, match="no parameter"):
        recipe.bind({"model": "m", "modle": "x"})


def test_user_input_is_bound_not_formatted(filled: Any) -> None:
    columns, rows = run_sql(
        filled, "SELECT count() FROM metrics WHERE model = {m:String}", {"m": "x' OR 1=1 --"}
    )
    assert columns == ["count()"]
    assert rows == [(0,)]
