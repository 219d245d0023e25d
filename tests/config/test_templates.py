"""Alert message templates: checked as ``drifthouse check`` does, filled in as the engine does."""

from __future__ import annotations

import pytest

from drifthouse.config.templates import (
    DEFAULT_MESSAGE,
    TEMPLATE_FIELDS,
    check_template,
    render_message,
)

FIELDS = dict.fromkeys(TEMPLATE_FIELDS, "x") | {"value": 0.31, "threshold": 0.25, "n": 10}


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        pytest.param("{rule}: {value:.2f}", None, id="fine"),
        pytest.param("{valeu}", "unknown field {valeu}", id="unknown-field"),
        pytest.param("{rule.__class__}", "unknown field {rule.__class__}", id="attribute-access"),
        pytest.param("{rule", "not a valid template", id="unclosed"),
        pytest.param("{value:q}", "cannot be formatted", id="bad-spec"),
    ],
)
def test_check_template(template: str, problem: str | None) -> None:
    found = check_template(template)
    assert (found is None) if problem is None else (problem in (found or "")), found


def test_render_message_falls_back_to_the_default() -> None:
    assert render_message("{rule} is {value:.1f}", FIELDS) == "x is 0.3"
    assert render_message(None, FIELDS) == render_message(DEFAULT_MESSAGE, FIELDS)
    # A spec that fits the sample values but not these ones: the default message, not an error.
    assert render_message("{n:.1%}{model:d}", FIELDS) == render_message(None, FIELDS)
    # Attribute access is refused even when filling in: config files write templates.
    assert render_message("{rule.__class__}", FIELDS) == render_message(None, FIELDS)
