"""``drifthouse check``: every problem in a config file, errors and warnings apart.

Beyond :func:`~drifthouse.config.loading.load_config`: the rule and routing checks
(:mod:`drifthouse.config.alert_checks`), the PII key, and reference profiles that do not exist
yet (docs/configuration.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from drifthouse.config.alert_checks import validate_routing, validate_rules
from drifthouse.config.alerting import RuleConfig
from drifthouse.config.checks import as_list
from drifthouse.config.loading import Loaded, load
from drifthouse.config.locations import is_warning, line_key
from drifthouse.config.schema import Config
from drifthouse.errors import ConfigError
from drifthouse.pii import PII_KEY_ENV, pii_key_from_env

__all__ = ["ConfigReport", "check_config"]


def _rule_problems(loaded: Loaded) -> list[tuple[str, str]]:
    """The rule checks on every rule that is well formed, even if others are not."""
    data = loaded.data if isinstance(loaded.data, dict) else {}
    rules: list[tuple[int, RuleConfig]] = []
    for i, raw in enumerate(as_list(data.get("rules"))):
        try:
            rules.append((i, RuleConfig.model_validate(raw)))
        except ValidationError:
            continue  # already reported by load_config
    problems: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    for i, rule in rules:
        if rule.name in first:
            problems.append(
                (
                    loaded.where(("rules", i, "name")),
                    f"duplicate rule name {rule.name!r} (also rules[{first[rule.name]}]); "
                    "names key alert state, so they must be unique",
                )
            )
        first.setdefault(rule.name, i)
        for where, message in validate_rules([rule], prefix="rules"):
            path = f"rules[{i}]" + where.removeprefix("rules[0]")
            problems.append((loaded.locate(path), message))
    return problems


def _pii_key_problems(config: Config, errors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A PII key too short is an error; one not set (yet) a warning: `run` needs it."""
    needing = [f"models.{name}.pii" for name, model in config.models.items() if model.pii]
    if config.pii:
        needing.insert(0, "pii")
    if not needing:
        return []
    where = config.where(needing[0])
    if not os.environ.get(PII_KEY_ENV):
        return [
            (
                where,
                f"PII names are listed but {PII_KEY_ENV} is not set here; `drifthouse run` needs "
                "it (at least 32 bytes, e.g. `openssl rand -hex 32`)",
            )
        ]
    try:
        pii_key_from_env(config.models)
    except ConfigError as exc:
        errors.extend((where, message) for _, message in exc.problems)
    return []


@dataclass(frozen=True)
class ConfigReport:
    """What ``drifthouse check`` found: the config (when it loaded), errors and warnings.

    Each problem is ``(location, message)``; a location is ``file:line dotted.path``.
    """

    config: Config | None
    errors: list[tuple[str, str]]
    warnings: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_config(path: str | Path) -> ConfigReport:
    """Every problem in a config file: structure, rules and the files it refers to.

    Beyond :func:`load_config`: rule conditions, templates and globs (errors), unknown metric
    names and windows no rule can match (warnings), reference profiles that do not exist
    (warnings: ``drifthouse profile`` makes them).

    Raises
    ------
    ConfigError
        Only when the file cannot be read or is not YAML at all.
    """
    config, loaded, found = load(path)
    for where, message in _rule_problems(loaded):
        found.append((where, loaded.redact(message)))
    found.sort(key=line_key)
    errors = [p for p in found if not is_warning(p[1])]
    warnings = [(where, msg.removeprefix("warning: ")) for where, msg in found if is_warning(msg)]
    if config is None:
        return ConfigReport(None, errors, warnings)
    for where, message in validate_routing(config):
        target = warnings if is_warning(message) else errors
        target.append((loaded.locate(where), loaded.redact(message.removeprefix("warning: "))))
    warnings.extend(_pii_key_problems(config, errors))
    for name in sorted(config.models):
        reference = config.reference_path(name)
        if reference is not None and not reference.is_file():
            warnings.append(
                (
                    config.where(f"models.{name}.reference"),
                    f"reference profile {str(reference)!r} does not exist yet; build it with "
                    f"`drifthouse profile INPUT --model {name} --out {reference}`",
                )
            )
    return ConfigReport(config, errors, sorted(warnings, key=line_key))
