"""Alert messages of drift rules name the window's top contributors (docs/alerting.md,
"Top contributors"), read from the attribution rows written with the window."""

from __future__ import annotations

from drifthouse.alerts.contributors import describe_bin, describe_contributors
from drifthouse.alerts.rules import RuleEngine
from drifthouse.config import RuleConfig
from drifthouse.rows import MetricRow

END = 7_200_000


def _row(
    metric: str, value: float, *, feature: str = "amount", bin_: str = "", segment: str = ""
) -> MetricRow:
    return MetricRow(window_start=END - 3_600_000, window_end=END, window="1h", model="fraud",
                     model_version="1", feature=feature, segment=segment, metric=metric,
                     value=value, n=1_000, run_id="live", bin=bin_)  # fmt: skip


def _window() -> list[MetricRow]:
    return [
        _row("psi", 0.31),
        _row("kl", 0.2),
        _row("psi_contribution", 0.21, bin_="[420.0, +inf)"),
        _row("mass_shift", 0.18, bin_="[420.0, +inf)"),
        _row("psi_contribution", 0.05, bin_="(-inf, 12.5)"),
        _row("mass_shift", -0.09, bin_="(-inf, 12.5)"),
        _row("psi_contribution", 0.01, bin_="[12.5, 100.0)"),
        _row("mass_shift", -0.02, bin_="[12.5, 100.0)"),
        _row("psi", 0.4, feature="__prediction__"),
        _row("psi_segment_share", 0.61, feature="__prediction__", segment="country=BR"),
        _row("psi_segment_share", 0.39, feature="__prediction__", segment="country=DE"),
        _row("psi_contribution", 0.3, feature="__prediction__", bin_="[0.8, 0.9)"),
        _row("mass_shift", 0.2, feature="__prediction__", bin_="[0.8, 0.9)"),
    ]


def test_bins_read_as_words() -> None:
    assert describe_bin("[420.0, +inf)", 0.18) == "+18% of events at or above 420.0"
    assert describe_bin("(-inf, 12.5)", -0.09) == "-9% of events below 12.5"
    assert describe_bin("[12.5, 100.0)", 0.004) == "+0.4% of events in [12.5, 100.0)"
    assert describe_bin("BR", 0.25) == "+25% of events are 'BR'"


def test_a_psi_alert_names_the_bins_that_carry_the_drift() -> None:
    engine = RuleEngine([RuleConfig(name="drift", metric="psi", when="value > 0.25")])
    alerts = engine.process(_window())
    by_feature = {a.feature: a.message for a in alerts}
    assert (
        "amount: +18% of events at or above 420.0, -9% of events below 12.5" in by_feature["amount"]
    )
    assert "[12.5, 100.0)" not in by_feature["amount"]  # two bins at most
    prediction = by_feature["__prediction__"]
    assert "__prediction__: +20% of events in [0.8, 0.9)" in prediction
    assert "segment country=BR carries 61% of the drift" in prediction


def test_kl_and_js_alerts_name_them_too_and_a_template_may_place_them() -> None:
    rules = [
        RuleConfig(name="kl", metric="kl", when="value > 0.1"),
        RuleConfig(name="own", metric="psi", when="value > 0.25", feature="amount",
                   message="{feature} drifted ({contributors})"),
    ]  # fmt: skip
    alerts = {a.rule: a.message for a in RuleEngine(rules).process(_window())}
    assert "+18% of events at or above 420.0" in alerts["kl"]
    assert alerts["own"] == (
        "amount drifted (amount: +18% of events at or above 420.0, -9% of events below 12.5)"
    )


def test_rules_never_evaluate_attribution_rows() -> None:
    # One series per bin would need the bin in its key: contributions are read, never ruled on.
    rules = [
        RuleConfig(name=m, metric=m, when="value > 0.0")
        for m in ("psi_contribution", "mass_shift", "psi_segment_share")
    ]
    alerts = RuleEngine(rules).process(_window())
    assert {(a.metric, a.segment) for a in alerts} == {
        ("psi_segment_share", "country=BR"), ("psi_segment_share", "country=DE"),
    }  # fmt: skip


def test_a_window_without_attribution_rows_keeps_the_plain_message() -> None:
    engine = RuleEngine([RuleConfig(name="drift", metric="psi", when="value > 0.25")])
    (alert,) = engine.process([_row("psi", 0.31)])
    assert "contributors" not in alert.message
    assert describe_contributors("amount", [], []) == ""
