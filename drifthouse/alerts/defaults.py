"""The rules drifthouse ships with (``defaults.yaml`` beside this module)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from drifthouse.config import RuleConfig

__all__ = ["default_rules_text", "load_default_rules"]


def default_rules_text() -> str:
    """The YAML text of the shipped rules (to show users or copy into ``drifthouse.yaml``)."""
    return (
        resources.files("drifthouse.alerts").joinpath("defaults.yaml").read_text(encoding="utf-8")
    )


def load_default_rules() -> list[RuleConfig]:
    """The shipped rules, validated.

    >>> [r.name for r in load_default_rules()][:2]
    ['serving-errors', 'latency-regression']
    """
    data: dict[str, Any] = yaml.safe_load(default_rules_text())
    return [RuleConfig.model_validate(rule) for rule in data["rules"]]
