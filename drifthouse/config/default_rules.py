"""The rules drifthouse ships with (``default_rules.yaml`` beside this module).

They are the ``rules`` of a configuration that leaves ``rules`` out (docs/configuration.md);
``rules: []`` means no rules at all.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

from drifthouse.config.alerting import RuleConfig

__all__ = ["default_rules_text", "load_default_rules"]


def default_rules_text() -> str:
    """The YAML text of the shipped rules (to show users or copy into ``drifthouse.yaml``)."""
    return (
        resources.files("drifthouse.config")
        .joinpath("default_rules.yaml")
        .read_text(encoding="utf-8")
    )


@functools.cache
def _rule_data() -> tuple[dict[str, Any], ...]:
    data: dict[str, Any] = yaml.safe_load(default_rules_text())
    return tuple(data["rules"])


def load_default_rules() -> list[RuleConfig]:
    """The shipped rules, validated (a new list of new objects at each call).

    >>> [r.name for r in load_default_rules()][:2]
    ['serving-errors', 'latency-regression']
    """
    return [RuleConfig.model_validate(rule) for rule in _rule_data()]
