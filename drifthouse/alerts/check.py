"""``drifthouse check`` for the alerting part of the config: rules, routes and inhibitions.

The checks belong to the configuration, which refuses a bad config before anything runs; they
live in :mod:`drifthouse.config.alert_checks` and are named here too, beside the alerting they
check. Problems come back as ``(location, message)``; a message starting with ``'warning: '`` is
a warning (the config works, but probably not as meant).

Example
-------
>>> from drifthouse.config import Config
>>> cfg = Config.model_validate({"rules": [{"name": "drift", "metric": "psi", "when": "value >"}]})
>>> validate_alerting(cfg)[0][0]
'rules[0].when'
"""

from __future__ import annotations

from drifthouse.config.alert_checks import BUILTIN_LABELS, validate_alerting, validate_routing

__all__ = ["BUILTIN_LABELS", "validate_alerting", "validate_routing"]
