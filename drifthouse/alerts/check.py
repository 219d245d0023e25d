"""``drifthouse check`` for the alerting part of the config: rules, routes and inhibitions.

Problems come back as ``(location, message)``; a message starting with ``'warning: '`` is a
warning (the config works, but probably not as meant).

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

from drifthouse.alerts.routing import labels_match
from drifthouse.alerts.rules import validate_rules
from drifthouse.config import Config

__all__ = ["BUILTIN_LABELS", "validate_alerting", "validate_routing"]

BUILTIN_LABELS = frozenset(
    {"rule", "severity", "model", "model_version", "feature", "segment", "metric"}
)
"""Labels every alert carries; rules add their own ``labels``."""


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
