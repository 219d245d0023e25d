"""The reference value of a metric, for rules such as ``value > 2 * baseline``
(docs/alerting.md): model-level baselines, realized label metrics for their estimates, and a
feature's missing rate and moments."""

from __future__ import annotations

from drifthouse.detectors.reference import Profile

__all__ = ["baseline_of"]


def baseline_of(profile: Profile | None, feature: str, metric: str) -> float | None:
    """The reference value of ``metric`` of ``feature`` (``''``: model level), or ``None``."""
    if profile is None:
        return None
    if feature == "":
        value = getattr(profile.baselines, metric, None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        # estimated_<m> (and its band) is compared with the reference's realized <m>.
        return profile.baselines.labels.get(_realized_name(metric))
    for f in profile.features:
        if f.name == feature:
            if metric == "missing_rate":
                return f.missing_rate
            if metric in {"mean", "std", "min", "max"}:
                return getattr(f, metric)  # type: ignore[no-any-return]
    return None


def _realized_name(metric: str) -> str:
    """``accuracy`` of ``estimated_accuracy``, ``estimated_accuracy_lower`` and ``_upper``."""
    if not metric.startswith("estimated_"):
        return metric
    return metric.removeprefix("estimated_").removesuffix("_lower").removesuffix("_upper")
