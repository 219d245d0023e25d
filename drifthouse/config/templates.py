"""Alert message templates: what a rule's ``message`` may name, and how it is filled in.

A template is ``str.format`` text over the fields of docs/alerting.md (``{rule}``,
``{value:.4g}``, ``{window_end}``, ...), without attribute or index access: templates come from
config files. :func:`check_template` is what ``drifthouse check`` says of one;
:func:`render_message` is what the rules engine sends.

Example
-------
>>> check_template("{rule} on {model}: {value:.2f}") is None
True
>>> check_template("{rule} is {valeu}")[:22]
'unknown field {valeu};'
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_MESSAGE", "TEMPLATE_FIELDS", "check_template", "render_message"]

DEFAULT_MESSAGE = (
    "{rule}: {metric} of model {model}{scope} is {value:.4g} (threshold {threshold:.4g}) "
    "in the {window} window ending {window_end}"
)
TEMPLATE_FIELDS = frozenset(
    {
        "rule", "severity", "status", "model", "model_version", "feature", "segment", "metric",
        "window", "value", "threshold", "baseline", "n", "window_start", "window_end",
        "window_start_ms", "window_end_ms", "scope", "contributors",
    }
)  # fmt: skip

"""The fields a template may name."""


class _SafeFormatter(string.Formatter):
    """``str.format`` without attribute or index access: templates come from config files."""

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if not field_name.isidentifier():
            raise KeyError(
                f"only plain names are allowed in message templates (got {{{field_name}}})"
            )
        return self.get_value(field_name, args, kwargs), field_name


_FORMATTER = _SafeFormatter()


def check_template(template: str) -> str | None:
    """None when the template is fine, else what is wrong with it."""
    try:
        fields = [f for _, f, _, _ in _FORMATTER.parse(template) if f is not None]
    except ValueError as exc:
        return f"not a valid template: {exc}"
    for field in fields:
        if field not in TEMPLATE_FIELDS:
            return f"unknown field {{{field}}}; use any of {', '.join(sorted(TEMPLATE_FIELDS))}"
    sample = dict.fromkeys(TEMPLATE_FIELDS, "x") | {
        "value": 1.0,
        "threshold": 1.0,
        "baseline": 1.0,
        "n": 1,
    }
    try:
        _FORMATTER.vformat(template, (), sample)
    except (ValueError, KeyError, IndexError) as exc:
        return f"cannot be formatted: {exc}"
    return None


def render_message(template: str | None, fields: Mapping[str, Any]) -> str:
    """``template`` (or :data:`DEFAULT_MESSAGE`) filled in with ``fields``; the default message
    when the template cannot be filled in with these values."""
    try:
        return _FORMATTER.vformat(template or DEFAULT_MESSAGE, (), fields)
    except (ValueError, KeyError, IndexError, TypeError):
        return _FORMATTER.vformat(DEFAULT_MESSAGE, (), fields)
