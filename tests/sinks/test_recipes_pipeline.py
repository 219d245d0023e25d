"""Every recipe of ``queries.sql`` on a store filled by the pipeline (fixture ``pipeline_store``).

The stream is the demo scenario over the 36 hours before the current hour (the recipes look back
from ``now()``): ``amount`` drifts, ``device`` gains a new category, ``age`` goes missing, a 5xx
spike fires and resolves ``serving-errors``, ``eta``'s latency triples, and every other ``fraud``
event of the last 12 hours is served by version ``2.4.0``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drifthouse.simulate import HOUR
from drifthouse.sinks import load_recipes, run_recipe
from tests.sinks.conftest import CANARY, PipelineStore

VERSION = "2.3.0"  # the version of `fraud` the reference profile describes


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def recipe(store: PipelineStore, name: str, **params: Any) -> list[dict[str, Any]]:
    columns, rows = run_recipe(store.client, name, params)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def stored_psi(store: PipelineStore, start_ms: int) -> dict[str, float]:
    """The `psi` rows the pipeline wrote for one 1h window of fraud 2.3.0, by feature."""
    rows = store.client.query(
        "SELECT feature, value FROM metrics FINAL WHERE model = 'fraud' AND model_version = {v:String} "
        "AND window = '1h' AND metric = 'psi' AND segment = '' AND run_id = 'live' "
        "AND window_start = {s:DateTime64(3)}",
        parameters={"v": VERSION, "s": at(start_ms)},
    ).result_rows
    return {str(f): float(v) for f, v in rows}


def test_the_pipeline_filled_the_store(pipeline_store: PipelineStore) -> None:
    stats = pipeline_store.stats
    assert stats.events > 30_000
    assert (stats.invalid, stats.late, pipeline_store.dead_letters) == (0, 0, 0)
    assert stats.windows > 0
    assert pipeline_store.alerts >= 2
    (events,) = pipeline_store.client.query(
        "SELECT sum(value) FROM metrics FINAL WHERE metric = 'events' AND window = '1h' "
        "AND feature = '' AND segment = '' AND run_id = 'live'"
    ).result_rows[0]
    assert events == stats.events


def test_every_recipe_is_covered_here() -> None:
    assert set(load_recipes()) == {
        "psi_range",
        "top_drifting_features",
        "quality_trend",
        "alert_history",
        "compare_versions",
        "metric_series",
        "segment_breakdown",
    }, "a new recipe: test it below on the pipeline-filled store"


@pytest.mark.parametrize("hours_before_end", [30, 20, 14], ids=["clean", "drifting", "drifted"])
def test_psi_range_over_one_window_is_the_psi_the_pipeline_wrote(
    pipeline_store: PipelineStore, hours_before_end: int
) -> None:
    start = pipeline_store.scenario.end_ms - hours_before_end * HOUR
    assert start < pipeline_store.canary_from_ms  # one version served the whole window
    wrote = stored_psi(pipeline_store, start)
    got = {
        r["feature"]: r["psi"]
        for r in recipe(
            pipeline_store,
            "psi_range",
            model="fraud",
            model_version=VERSION,
            start=at(start),
            end=at(start + HOUR),
        )
    }
    profile = pipeline_store.profiles["fraud"]
    numeric = {f.name for f in profile.features if f.kind == "numeric"} | {"__prediction__"}
    assert set(got) == numeric  # the score is a number: its drift is recomputed too
    assert numeric <= set(wrote)
    for feature in numeric:
        assert got[feature] == pytest.approx(wrote[feature], abs=1e-9), feature


def test_psi_range_over_a_day_finds_the_drifted_amount(pipeline_store: PipelineStore) -> None:
    end = pipeline_store.scenario.end_ms
    rows = recipe(
        pipeline_store,
        "psi_range",
        model="fraud",
        model_version=VERSION,
        start=at(end - 24 * HOUR),
        end=at(end),
    )
    psi = {r["feature"]: r["psi"] for r in rows}
    assert rows[0]["feature"] == "amount"  # sorted by PSI, largest first
    assert psi["amount"] > 0.25
    assert psi["tenure_days"] < 0.1  # untouched by the faults
    # Discrete features (counts) have fewer distinct quantiles, hence fewer PSI bins.
    assert all(2 <= r["bins"] <= 10 and r["n"] > 0 for r in rows)


def test_top_drifting_features_of_fraud(pipeline_store: PipelineStore) -> None:
    rows = recipe(pipeline_store, "top_drifting_features", model="fraud")
    features = [r["feature"] for r in rows]
    assert {"amount", "device"} <= set(features[:3]), rows
    top = rows[0]
    assert top["peak"] > 0.25
    assert top["windows"] == 36 + 12  # the recipe does not split versions: 2.3.0 and the canary
    assert all(r["peak"] >= r["mean"] >= 0 for r in rows)
    limited = recipe(pipeline_store, "top_drifting_features", model="fraud", metric="js", limit=2)
    assert len(limited) == 2


def test_quality_trend_shows_missing_age_and_the_new_device(pipeline_store: PipelineStore) -> None:
    rows = recipe(pipeline_store, "quality_trend", model="fraud")
    age = [r for r in rows if r["feature"] == "age"]
    assert len(age) >= 2  # the stream spans two or three days
    assert age[-1]["missing_rate"] > 3 * age[0]["missing_rate"]
    assert all(0 <= r["missing_rate"] <= 1 for r in rows)
    assert sum(r["new_categories"] for r in rows if r["feature"] == "device") > 0
    assert sum(r["new_categories"] for r in rows if r["feature"] == "country") == 0


def test_alert_history_has_the_5xx_alert(pipeline_store: PipelineStore) -> None:
    rows = recipe(pipeline_store, "alert_history", model="fraud")
    serving = [
        r
        for r in rows
        if r["rule"] == "serving-errors"
        and r["model_version"] == VERSION
        and "in the 1h window" in r["message"]
    ]
    assert [r["status"] for r in serving] == ["resolved", "firing"]  # newest first
    assert serving[0]["ts"] - serving[1]["ts"] == timedelta(hours=2)  # the two hours of 5xx
    firing = serving[1]
    assert firing["severity"] == "critical"
    assert firing["metric"] == "error_rate_5xx"
    assert firing["value"] > 0.05
    assert firing["threshold"] == pytest.approx(0.05)
    assert all(r["model"] == "fraud" for r in rows)
    everyone = recipe(pipeline_store, "alert_history")
    assert {r["model"] for r in everyone} == {"fraud", "eta"}
    assert recipe(pipeline_store, "alert_history", run_id="replay-x") == []


def test_compare_versions_of_fraud(pipeline_store: PipelineStore) -> None:
    rows = recipe(
        pipeline_store, "compare_versions", model="fraud", version_a=VERSION, version_b=CANARY
    )
    by_key = {(r["feature"], r["metric"]): r for r in rows}
    (canary_events,) = pipeline_store.client.query(
        "SELECT sum(value) FROM metrics FINAL WHERE model = 'fraud' AND model_version = {v:String} "
        "AND metric = 'events' AND window = '1h' AND feature = '' AND segment = '' AND run_id = 'live'",
        parameters={"v": CANARY},
    ).result_rows[0]
    events = by_key[("", "events")]
    assert events["n_b"] == canary_events > 1000
    sent = pipeline_store.events
    assert (events["n_a"], events["n_b"]) == (sent[("fraud", VERSION)], sent[("fraud", CANARY)])
    assert ("amount", "psi") in by_key
    assert ("device", "new_category") in by_key
    for r in rows:
        assert r["diff"] == pytest.approx(r["b"] - r["a"])
    # The canary serves only the drifted last 12 hours: its amount PSI is higher on average.
    assert by_key[("amount", "psi")]["diff"] > 0


def test_metric_series_per_version(pipeline_store: PipelineStore) -> None:
    rows = recipe(pipeline_store, "metric_series", model="fraud", metric="error_rate_5xx")
    versions = {r["model_version"] for r in rows}
    assert versions == {VERSION, CANARY}
    stable = [r for r in rows if r["model_version"] == VERSION]
    assert len(stable) == 36  # one 1h window per hour of the stream
    assert max(r["value"] for r in stable) > 0.1  # the 5xx spike
    times = [r["window_start"] for r in rows]
    assert times == sorted(times)
    latency = recipe(pipeline_store, "metric_series", model="eta", metric="latency_p95")
    assert latency[-1]["value"] > 2 * latency[0]["value"]  # the regression
    amount = recipe(
        pipeline_store,
        "metric_series",
        model="fraud",
        metric="psi",
        feature="amount",
        window="4h/1h",
    )
    assert amount
    assert all(r["n"] > 0 for r in amount)


def test_segment_breakdown_of_fraud_5xx_per_country(pipeline_store: PipelineStore) -> None:
    rows = recipe(pipeline_store, "segment_breakdown", model="fraud")
    assert rows[0]["segment"] == ""  # the model-wide row first
    model = rows[0]
    countries = rows[1:]
    assert len(countries) >= 3
    assert all(r["segment"].startswith("country=") for r in countries)
    # Each fraud event has one country: the countries' events add up to the model's, and in
    # the spike's window some country's 5xx rate is at least the model's (a weighted mean).
    assert sum(r["total_n"] for r in countries) == model["total_n"]
    assert max(r["peak"] for r in countries) >= model["peak"] > 0.1
    assert [r["peak"] for r in countries] == sorted((r["peak"] for r in countries), reverse=True)
    events = recipe(pipeline_store, "segment_breakdown", model="fraud", metric="events")
    assert sum(r["total_n"] for r in events[1:]) == events[0]["total_n"]
    drift = recipe(
        pipeline_store, "segment_breakdown", model="fraud", metric="psi", feature="__prediction__"
    )
    assert {r["segment"] for r in drift} == {"", *(r["segment"] for r in countries)}
