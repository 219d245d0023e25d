"""``drifthouse check`` for the alerting part of the config: rules, routes and inhibitions.

Problems come back as ``(location, message)``; a message starting with ``'warning: '`` is a
warning (the config works, but probably not as meant). The rules engine refuses rules with
errors (:func:`drifthouse.alerts.rules.compile_rules`).

Example
-------
>>> from drifthouse.config import Config
>>> cfg = Config.model_validate({
...     "rules": [{"name": "drift", "metric": "psi", "when": "value > 0.25"}],
...     "routes": [{"match": {"severity": "critical", "tema": "risk"}, "receivers": ["c"]}],
...     "receivers": {"c": {"type": "console"}}})
>>> for where, what in validate_alerting(cfg):
...     print(where, "|", what[:50])
routes[0].match.tema | warning: 'tema' is not a label alerts carry; known
rules[0] | warning: alerts of rule 'drift' (severity warning)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence

from drifthouse.config.alerting import RuleConfig
from drifthouse.config.schema import Config
from drifthouse.config.templates import check_template
from drifthouse.expr import ExprError, parse

__all__ = [
    "BUILTIN_LABELS",
    "KNOWN_METRICS",
    "labels_match",
    "validate_alerting",
    "validate_routing",
    "validate_rules",
]

KNOWN_METRICS = frozenset(
    {
        # drift
        "psi", "ks", "ks_pvalue", "chi2", "chi2_pvalue", "js", "wasserstein", "importance_shift",
        "kl", "psi_contribution", "js_contribution", "mass_shift", "psi_segment_share",
        # embedding features
        "embedding_cosine_distance", "embedding_mmd2", "embedding_mmd2_pvalue",
        "wrong_length", "zero_vector",
        "reconstruction_error", "reconstruction_error_lower", "reconstruction_error_upper",
        "reconstruction_error_z",
        # multiple testing: the window's Benjamini-Hochberg q-values beside the p-values
        "ks_qvalue", "chi2_qvalue", "embedding_mmd2_qvalue",
        # quality
        "count", "missing", "missing_rate", "non_finite", "type_error", "out_of_range",
        "new_category", "min", "max", "mean", "std",
        # model level
        "events", "invalid_events", "late_events", "throughput_rps", "latency_p50", "latency_p95",
        "latency_p99", "error_rate_4xx", "error_rate_5xx",
        # with labels
        "accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse", "r2", "mape",
        "labels", "labels_coverage", "labels_unmatched", "labels_expired", "labels_duplicate",
        "labels_unusable", "cbpe_unusable",
        # fairness
        "demographic_parity_diff", "equal_opportunity_diff",
        # importance, change detection, metric events
        "importance", "change_detected", "metric_events", "metric_events_ignored",
        # versions compared in one window (canaries)
        "vs_psi", "vs_js", "vs_ks", "vs_ks_pvalue", "vs_chi2", "vs_chi2_pvalue", "vs_mean_diff",
        "vs_error_rate_4xx_diff", "vs_error_rate_5xx_diff", "vs_latency_p50_diff",
        "vs_latency_p95_diff", "vs_latency_p99_diff", "vs_latency_p50_ratio",
        "vs_latency_p95_ratio", "vs_latency_p99_ratio", "vs_traffic_share",
        # a shadow model paired with its primary
        "shadow_pairs", "shadow_missing", "shadow_agreement", "shadow_score_mae",
    }
)  # fmt: skip
"""Metric names drifthouse computes (docs/metrics.md); metric events may add more (``cpu_util``)."""

BUILTIN_LABELS = frozenset(
    {"rule", "severity", "model", "model_version", "feature", "segment", "metric"}
)
"""Labels every alert carries; rules add their own ``labels``."""


def labels_match(matchers: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches its label (exact or glob; a missing label is ``''``)."""
    return all(fnmatch.fnmatchcase(labels.get(k, ""), v) for k, v in matchers.items())


def validate_alerting(config: Config) -> list[tuple[str, str]]:
    """Every problem in ``rules``, ``routes`` and ``inhibit`` of ``config``."""
    return validate_rules(config.rules) + validate_routing(config)


def validate_routing(config: Config) -> list[tuple[str, str]]:
    """Problems between rules, routes and inhibitions: labels no alert carries, rules whose
    alerts reach no receiver (what :func:`validate_alerting` adds to the rules' own checks)."""
    problems: list[tuple[str, str]] = []
    known = set(BUILTIN_LABELS)
    for rule in config.rules:
        known.update(rule.labels)
    hint = ", ".join(sorted(known))

    def check_keys(where: str, keys: list[str]) -> None:
        for key in keys:
            if key not in known:
                problems.append(
                    (
                        f"{where}.{key}",
                        f"warning: {key!r} is not a label alerts carry; known: {hint}",
                    )
                )

    for i, route in enumerate(config.routes):
        check_keys(f"routes[{i}].match", list(route.match))
        check_keys(f"routes[{i}].group_by", route.group_by)
        if route.group_wait > route.group_interval:
            problems.append(
                (
                    f"routes[{i}].group_wait",
                    "warning: group_wait is longer than group_interval; usually it is shorter",
                )
            )
    for i, inhibit in enumerate(config.inhibit):
        check_keys(f"inhibit[{i}].source", list(inhibit.source))
        check_keys(f"inhibit[{i}].target", list(inhibit.target))
        check_keys(f"inhibit[{i}].equal", inhibit.equal)
    for i, rule in enumerate(config.rules):
        # Labels that are globs in the rule are unknown until an alert exists: leave them out.
        labels = {"rule": rule.name, "severity": rule.severity, **rule.labels}
        unknown = set()
        for key in ("metric", "model", "model_version", "feature", "segment"):
            value = getattr(rule, key)
            if any(ch in value for ch in "*?["):
                unknown.add(key)
            else:
                labels[key] = value
        routable = [
            r
            for r in config.routes
            if labels_match({k: v for k, v in r.match.items() if k not in unknown}, labels)
        ]
        if not routable:
            problems.append(
                (
                    f"rules[{i}]",
                    f"warning: alerts of rule {rule.name!r} (severity {rule.severity}) match no route and "
                    "reach no receiver; add a route for them or a catch-all route (match: {})",
                )
            )
    return problems


def _glob_problem(pattern: str) -> str | None:
    depth = 0
    for ch in pattern:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
    if depth:
        return f"unbalanced '[' in glob {pattern!r}; write '[[]' for a literal '['"
    return None


def validate_rules(rules: Sequence[RuleConfig], *, prefix: str = "rules") -> list[tuple[str, str]]:
    """Every problem in ``rules`` as ``(location, message)``; warnings start with ``'warning: '``.

    Checks: conditions parse (the message names the column), templates use known fields only,
    globs are well formed, names are unique, metrics are known (a warning: metric events may
    bring their own names such as ``cpu_util``).
    """
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules):
        where = f"{prefix}[{i}]"
        if rule.name in seen:
            problems.append(
                (
                    f"{where}.name",
                    f"duplicate rule name {rule.name!r} (also {prefix}[{seen[rule.name]}]); names key alert state",
                )
            )
        seen.setdefault(rule.name, i)
        if not rule.name.strip():
            problems.append((f"{where}.name", "must not be empty"))
        for field in ("when", "clear"):
            text = getattr(rule, field)
            if text is None:
                continue
            try:
                parse(text)
            except ExprError as exc:
                problems.append((f"{where}.{field}", f"rule {rule.name!r}: {exc}"))
        for field in ("metric", "model", "model_version", "feature", "segment", "window"):
            problem = _glob_problem(getattr(rule, field))
            if problem:
                problems.append((f"{where}.{field}", problem))
        if rule.message is not None:
            problem = check_template(rule.message)
            if problem:
                problems.append((f"{where}.message", problem))
        metric = rule.metric
        if not any(fnmatch.fnmatchcase(m, metric) for m in KNOWN_METRICS) and not metric.endswith(
            "_util"
        ):
            problems.append(
                (
                    f"{where}.metric",
                    f"warning: {metric!r} is not a metric drifthouse computes; fine if metric events send it, "
                    f"else check the spelling (e.g. psi, error_rate_5xx, latency_p95)",
                )
            )
    return problems
