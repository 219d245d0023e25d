"""Realistic result rows for the sink, query and dashboard tests.

Three hours of hourly windows for two models, two versions, numeric and categorical features,
drift growing on ``amount`` in version 2, latency and error metrics, label metrics, histogram and
category sketches with a ``reference`` run, and a firing/resolved alert pair.
"""

from __future__ import annotations

import math
import time

from drifthouse.rows import AlertRow, MetricRow, SketchRow

HOUR = 3_600_000
EDGES = [-1.28, -0.84, -0.52, -0.25, 0.0, 0.25, 0.52, 0.84, 1.28]
REF_COUNTS = [100, 100, 100, 100, 100, 100, 100, 100, 100, 100]


def now_hour() -> int:
    return int(time.time() * 1000) // HOUR * HOUR


def metric(start: int, model: str, version: str, feature: str, metric: str, value: float, *,
           n: int = 1000, run_id: str = "live", computed_at: int = 1, window: str = "1h",
           segment: str = "") -> MetricRow:  # fmt: skip
    return MetricRow(window_start=start, window_end=start + HOUR, window=window, model=model,
                     model_version=version, feature=feature, segment=segment, metric=metric,
                     value=value, n=n, run_id=run_id, computed_at=computed_at)  # fmt: skip


def hist(start: int, model: str, version: str, feature: str, counts: list[int], *,
         run_id: str = "live", window: str = "1h", computed_at: int = 1) -> SketchRow:  # fmt: skip
    return SketchRow(window_start=start, window_end=start + HOUR, window=window, model=model,
                     model_version=version, feature=feature, segment="", metric="psi", kind="hist",
                     edges=list(EDGES), labels=[], counts=counts, n=sum(counts), run_id=run_id,
                     computed_at=computed_at)  # fmt: skip


def results(
    hours: int = 6, start: int | None = None
) -> tuple[list[MetricRow], list[SketchRow], list[AlertRow]]:
    """Rows as the pipeline would write them for ``hours`` hourly windows ending now."""
    end = now_hour() if start is None else start + hours * HOUR
    first = end - hours * HOUR
    metrics: list[MetricRow] = []
    sketches: list[SketchRow] = []
    for model in ("fraud", "churn"):
        for version in ("1.0.0", "2.0.0"):
            sketches.append(hist(first - HOUR, model, version, "amount", REF_COUNTS,
                                 run_id="reference", window="reference"))  # fmt: skip
            for h in range(hours):
                start_ms = first + h * HOUR
                shift = 0.05 * h if version == "2.0.0" else 0.0
                counts = [int(100 * (1 + shift * (i - 4.5) / 4.5)) for i in range(10)]
                sketches.append(hist(start_ms, model, version, "amount", counts))
                sketches.append(
                    SketchRow(
                        window_start=start_ms,
                        window_end=start_ms + HOUR,
                        window="1h",
                        model=model,
                        model_version=version,
                        feature="country",
                        segment="",
                        metric="chi2",
                        kind="categories",
                        edges=[],
                        labels=["DE", "FR", "US"],
                        counts=[300, 200, 500],
                        n=1000,
                        run_id="live",
                        computed_at=1,
                    )
                )
                for feature, base in (("amount", 0.02), ("age", 0.01), ("country", 0.005)):
                    drift = base + (shift * 2 if feature == "amount" else 0.0)
                    metrics += [
                        metric(start_ms, model, version, feature, "psi", drift),
                        metric(start_ms, model, version, feature, "js", math.sqrt(drift) / 4),
                        metric(start_ms, model, version, feature, "missing_rate", 0.01 * (h % 3)),
                        metric(start_ms, model, version, feature, "out_of_range", float(h)),
                        metric(start_ms, model, version, feature, "mean", 10.0 + h),
                    ]
                    if feature != "country":
                        metrics.append(metric(start_ms, model, version, feature, "ks", drift / 2))
                metrics += [
                    metric(start_ms, model, version, "", "events", 1000),
                    metric(start_ms, model, version, "", "invalid_events", 3),
                    metric(start_ms, model, version, "", "throughput_rps", 1000 / 3600),
                    metric(start_ms, model, version, "", "latency_p50", 20 + h),
                    metric(start_ms, model, version, "", "latency_p95", 45 + 2 * h),
                    metric(start_ms, model, version, "", "latency_p99", 80 + 3 * h),
                    metric(start_ms, model, version, "", "error_rate_4xx", 0.01),
                    metric(start_ms, model, version, "", "error_rate_5xx", 0.002 * h),
                    metric(start_ms, model, version, "", "accuracy", 0.93 - 0.01 * h),
                    metric(start_ms, model, version, "", "f1", 0.9 - 0.01 * h),
                    metric(start_ms, model, version, "", "roc_auc", 0.95 - 0.005 * h),
                    metric(start_ms, model, version, "__prediction__", "psi", 0.01 + shift),
                    metric(start_ms, model, version, "", "accuracy", 0.9, segment="country=DE"),
                ]
    alerts = [
        AlertRow(ts=first + 2 * HOUR + 60_000, rule="data-drift", severity="warning", status="firing",
                 model="fraud", model_version="2.0.0", feature="amount", segment="", metric="psi",
                 value=0.3, threshold=0.25, window_start=first + HOUR, window_end=first + 2 * HOUR,
                 message="psi of amount is 0.3 (> 0.25)", receivers=["slack"],
                 dedup_key="data-drift/fraud/amount", run_id="live"),
        AlertRow(ts=first + 4 * HOUR + 60_000, rule="data-drift", severity="warning", status="resolved",
                 model="fraud", model_version="2.0.0", feature="amount", segment="", metric="psi",
                 value=0.05, threshold=0.1, window_start=first + 3 * HOUR, window_end=first + 4 * HOUR,
                 message="psi of amount is back to 0.05", receivers=["slack"],
                 dedup_key="data-drift/fraud/amount", run_id="live"),
        AlertRow(ts=first + 3 * HOUR + 60_000, rule="serving-errors", severity="critical",
                 status="firing", model="churn", model_version="2.0.0", feature="", segment="",
                 metric="error_rate_5xx", value=0.08, threshold=0.05, window_start=first + 2 * HOUR,
                 window_end=first + 3 * HOUR, message="5xx rate 8%", receivers=["pagerduty", "slack"],
                 dedup_key="serving-errors/churn", run_id="live"),
    ]  # fmt: skip
    return metrics, sketches, alerts
