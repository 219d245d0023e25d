"""Two versions of one model in the same window, compared with each other (docs/metrics.md,
"Version comparisons and shadows").

A canary serves a few percent of a model's traffic beside the main version. Each version's
window is already compared with the reference; :func:`compare_states` compares the two merged
window states with each other instead: the canary's prediction distribution against the main
version's (the same statistics as prediction drift, the main version's histogram in the
reference's place, on the same bins), and the differences of their serving metrics. Both
states come from one :class:`~drifthouse.detectors.model_sketch.ModelSketch` (a model's
versions share its profile and so its bins), so nothing here depends on how the windows were
cut or merged: the states are exact, and so are the comparisons.

Example
-------
>>> from drifthouse.config import MetricsConfig
>>> sketch = ModelSketch("m", None, MetricsConfig())
>>> compare_states(sketch, sketch.empty(), sketch.empty())
[]
"""

from __future__ import annotations

import numpy as np

from drifthouse.detectors.base import Context, Result
from drifthouse.detectors.model_sketch import EVENTS, PREDICTION_FEATURE, ModelSketch, ModelState
from drifthouse.detectors.numeric import NumericState
from drifthouse.detectors.segments import PREDICTION_METRICS

__all__ = ["PREFIX", "compare_states"]

#: Every comparison metric's name starts with it: ``vs_psi``, ``vs_error_rate_5xx_diff``.
PREFIX = "vs_"


def compare_states(sketch: ModelSketch, current: ModelState, baseline: ModelState) -> list[Result]:
    """The ``vs_*`` results of ``current`` (a canary's window) against ``baseline`` (the main
    version's window of the same span), ``n_ref`` the baseline's events and ``n_cur`` the
    current's. Empty when either side has no events.

    - prediction (``feature == '__prediction__'``, when the model has a profile and both sides
      have predictions): ``vs_`` + each prediction-drift metric (``vs_psi``, ``vs_js``,
      ``vs_ks``, ``vs_ks_pvalue`` for a score; ``vs_psi``, ``vs_js``, ``vs_chi2``,
      ``vs_chi2_pvalue`` for classes) and, for a score, ``vs_mean_diff``;
    - serving (``feature == ''``): ``vs_error_rate_4xx_diff``, ``vs_error_rate_5xx_diff``
      (current minus baseline), and per latency quantile ``vs_latency_p95_diff`` (ms) and
      ``vs_latency_p95_ratio`` (current over baseline, when the baseline's is positive).
    """
    n_cur, n_ref = int(current.counters[EVENTS]), int(baseline.counters[EVENTS])
    if n_cur == 0 or n_ref == 0:
        return []
    out = _prediction(sketch, current, baseline)

    def r(metric: str, value: float) -> Result:
        return Result("", PREFIX + metric, float(value), None, n_ref, n_cur)

    status = sketch.status
    if status.total(current.status) and status.total(baseline.status):
        out += [
            r("error_rate_4xx_diff", status.error_rate_4xx(current.status) - status.error_rate_4xx(baseline.status)),
            r("error_rate_5xx_diff", status.error_rate_5xx(current.status) - status.error_rate_5xx(baseline.status)),
        ]  # fmt: skip
    latency = sketch.latency
    for q in latency.quantiles:
        a, b = latency.quantile(current.latency, q), latency.quantile(baseline.latency, q)
        if a is None or b is None:
            continue
        name = f"{latency.name}_p{round(q * 100):d}"
        out.append(r(f"{name}_diff", a - b))
        if b > 0:
            out.append(r(f"{name}_ratio", a / b))
    return out


def _prediction(sketch: ModelSketch, current: ModelState, baseline: ModelState) -> list[Result]:
    block, cur, ref = sketch.prediction, current.prediction, baseline.prediction
    if block is None or cur is None or ref is None:
        return []
    # The block's own evaluation with the baseline in the reference's place: same bins, same
    # eps floor, same statistics as prediction drift against the profile.
    drift = block.evaluate(cur, Context(reference=ref))  # type: ignore[arg-type]
    out = [
        Result(PREDICTION_FEATURE, PREFIX + d.metric, d.value, d.p_value, d.n_ref, d.n_cur)
        for d in drift
        if d.metric in PREDICTION_METRICS and d.metric != "mean"
    ]
    if isinstance(cur, NumericState) and isinstance(ref, NumericState):
        n_cur, n_ref = int(cur.count[0]), int(ref.count[0])
        if n_cur and n_ref:
            diff = float(np.float64(cur.mean[0]) - np.float64(ref.mean[0]))
            out.append(Result(PREDICTION_FEATURE, PREFIX + "mean_diff", diff, None, n_ref, n_cur))
    return out
