"""Realistic result rows for the sink, query and dashboard tests.

Hourly windows for two models and two versions: reference profiles built by the detectors from
synthetic data (stored as ``references`` and reference ``sketches`` rows), window histograms on
the profiles' fine grids with drift growing on ``amount`` in version 2.0.0, PSI computed by the
detectors' own statistic, quality, latency, error and label metrics, and a few alerts.
"""

from __future__ import annotations

import math
import time
import zlib
from functools import cache

import numpy as np

from drifthouse.config import MetricsConfig
from drifthouse.detectors.reference import FeatureProfile, Profile
from drifthouse.detectors.stats import psi
from drifthouse.profiles.columns import build_profile
from drifthouse.rows import AlertRow, MetricRow, SketchRow
from drifthouse.sinks.references import reference_rows
from drifthouse.sinks.tables import ReferenceRow

HOUR = 3_600_000
MODELS = ("fraud", "churn")
VERSIONS = ("1.0.0", "2.0.0")
PER_WINDOW = 2_000
SETTINGS = MetricsConfig(psi_bins=10, ks_bins=50)


def _seed(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


def now_hour() -> int:
    return int(time.time() * 1000) // HOUR * HOUR


def metric(start: int, model: str, version: str, feature: str, metric: str, value: float, *,
           n: int = PER_WINDOW, run_id: str = "live", computed_at: int = 1, window: str = "1h",
           segment: str = "") -> MetricRow:  # fmt: skip
    return MetricRow(window_start=start, window_end=start + HOUR, window=window, model=model,
                     model_version=version, feature=feature, segment=segment, metric=metric,
                     value=value, n=n, run_id=run_id, computed_at=computed_at)  # fmt: skip


@cache
def profile(model: str, version: str) -> Profile:
    rng = np.random.default_rng(_seed(model, version))
    return build_profile(
        model=model, model_version=version, created_at="2026-01-01T00:00:00Z",
        source_digest=f"{model}-{version}".ljust(64, "0"), settings=SETTINGS,
        features={"amount": rng.normal(0.0, 1.0, 20_000), "age": rng.normal(40.0, 10.0, 20_000),
                  "country": list(rng.choice(["DE", "FR", "US"], 20_000, p=[0.3, 0.2, 0.5]))},
    )  # fmt: skip


def bin_counts(edges: list[float], values: np.ndarray) -> list[int]:
    """Counts on ``edges`` with ``edges[i-1] <= v < edges[i]`` in bin ``i`` (outermost bins open)."""
    index = np.searchsorted(np.asarray(edges), values, side="right")
    return [int(c) for c in np.bincount(index, minlength=len(edges) + 1)]


def window_values(model: str, version: str, start: int, hour_index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(_seed(model, version, str(start // HOUR)))
    shift = 0.15 * hour_index if version == "2.0.0" else 0.0
    return {
        "amount": rng.normal(shift, 1.0, PER_WINDOW),
        "age": rng.normal(40.0, 10.0, PER_WINDOW),
    }


def numeric(p: Profile, name: str) -> FeatureProfile:
    return p.feature(name)


def references() -> list[ReferenceRow]:
    return [reference_rows(profile(m, v))[0] for m in MODELS for v in VERSIONS]


def results(
    hours: int = 6, start: int | None = None
) -> tuple[list[MetricRow], list[SketchRow], list[AlertRow]]:
    """Rows as the pipeline would write them for ``hours`` hourly windows ending now."""
    end = now_hour() if start is None else start + hours * HOUR
    first = end - hours * HOUR
    metrics: list[MetricRow] = []
    sketches: list[SketchRow] = []
    for model in MODELS:
        for version in VERSIONS:
            prof = profile(model, version)
            sketches += reference_rows(prof)[1]
            for h in range(hours):
                start_ms = first + h * HOUR
                values = window_values(model, version, start_ms, h)
                common = {"window_start": start_ms, "window_end": start_ms + HOUR, "window": "1h",
                          "model": model, "model_version": version, "segment": "", "run_id": "live",
                          "computed_at": 1}  # fmt: skip
                for name, vals in values.items():
                    f = numeric(prof, name)
                    fine = bin_counts(f.edges, vals)
                    sketches.append(SketchRow(feature=name, metric="", kind="hist", edges=list(f.edges),
                                              labels=[], counts=fine, n=PER_WINDOW, **common))  # type: ignore[arg-type]  # fmt: skip
                    drift = psi(ref_counts=f.psi_counts, cur_counts=bin_counts(f.psi_edges, vals))
                    metrics += [
                        metric(start_ms, model, version, name, "psi", drift),
                        metric(start_ms, model, version, name, "ks", min(1.0, drift / 2)),
                        metric(start_ms, model, version, name, "js", math.sqrt(drift) / 4),
                        metric(start_ms, model, version, name, "missing_rate", 0.01 * (h % 3)),
                        metric(start_ms, model, version, name, "missing", 20.0 * (h % 3)),
                        metric(start_ms, model, version, name, "out_of_range", float(h)),
                        metric(start_ms, model, version, name, "mean", float(np.mean(vals))),
                    ]
                sketches.append(SketchRow(feature="country", metric="", kind="categories", edges=[],
                                          labels=["US", "DE", "FR", "__other__"], counts=[1000, 600, 398, 2],
                                          n=PER_WINDOW, **common))  # type: ignore[arg-type]  # fmt: skip
                metrics += [
                    metric(start_ms, model, version, "country", "psi", 0.004),
                    metric(start_ms, model, version, "country", "js", 0.01),
                    metric(start_ms, model, version, "country", "chi2", 1.2),
                    metric(start_ms, model, version, "country", "new_category", 2.0),
                    metric(start_ms, model, version, "country", "missing_rate", 0.0),
                    metric(start_ms, model, version, "", "events", PER_WINDOW),
                    metric(start_ms, model, version, "", "invalid_events", 3),
                    metric(start_ms, model, version, "", "late_events", 1),
                    metric(start_ms, model, version, "", "throughput_rps", PER_WINDOW / 3600),
                    metric(start_ms, model, version, "", "latency_p50", 20 + h),
                    metric(start_ms, model, version, "", "latency_p95", 45 + 2 * h),
                    metric(start_ms, model, version, "", "latency_p99", 80 + 3 * h),
                    metric(start_ms, model, version, "", "error_rate_4xx", 0.01),
                    metric(start_ms, model, version, "", "error_rate_5xx", 0.002 * h),
                    metric(start_ms, model, version, "", "accuracy", 0.93 - 0.01 * h),
                    metric(start_ms, model, version, "", "f1", 0.9 - 0.01 * h),
                    metric(start_ms, model, version, "", "roc_auc", 0.95 - 0.005 * h),
                    metric(start_ms, model, version, "__prediction__", "psi", 0.01 + 0.02 * h),
                    metric(start_ms, model, version, "", "accuracy", 0.9, segment="country=DE"),
                ]
                # Serving metrics per segment value: n is the value's events.
                for country, n in (
                    ("country=US", PER_WINDOW * 3 // 5),
                    ("country=DE", PER_WINDOW * 2 // 5),
                ):
                    metrics += [
                        metric(start_ms, model, version, "", "events", n, n=n, segment=country),
                        metric(start_ms, model, version, "", "error_rate_5xx", 0.002 * h * n / PER_WINDOW,
                               n=n, segment=country),
                        metric(start_ms, model, version, "", "latency_p95", 45 + 2 * h, n=n, segment=country),
                    ]  # fmt: skip
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
                 status="firing", model="fraud", model_version="2.0.0", feature="", segment="",
                 metric="error_rate_5xx", value=0.08, threshold=0.05, window_start=first + 2 * HOUR,
                 window_end=first + 3 * HOUR, message="5xx rate 8%", receivers=["pagerduty", "slack"],
                 dedup_key="serving-errors/fraud", run_id="live"),
    ]  # fmt: skip
    return metrics, sketches, alerts
