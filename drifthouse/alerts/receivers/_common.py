"""Helpers shared by the receivers: ``Retry-After`` parsing, alert rendering and :func:`plain`,
which every receiver that shows text to people applies to each value that comes from events."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import msgspec

from drifthouse.rows import AlertRow

__all__ = ["fmt_value", "grafana_link", "iso", "parse_retry_after", "plain", "plain_alert"]


def parse_retry_after(
    headers: Mapping[str, Any] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not headers:
        return None
    raw: Any = None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value  # slack-sdk may give lists
            break
    if raw is None:
        return None
    raw = str(raw).strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def iso(ms: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC timestamp."""
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def fmt_value(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.4g}"


def grafana_link(base: str | None, alert: AlertRow) -> str | None:
    """A link to the Grafana panel of the alert's series, around the alert's window."""
    if not base:
        return None
    span = max(alert.window_end - alert.window_start, 60_000)
    params = {
        "var-model": alert.model,
        "var-model_version": alert.model_version,
        "var-feature": alert.feature,
        "var-metric": alert.metric,
        "from": alert.window_start - 12 * span,
        "to": alert.window_end + span,
    }
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}{urlencode(params)}"


# C0 and C1 controls (DEL included) and the invisible marks that reorder text (bidi
# embeddings, overrides and isolates): a value holding them could clear a terminal, fake a
# line of its own or show itself reversed.
_WHITESPACE_CONTROLS = str.maketrans(dict.fromkeys("\t\n\r\v\f\u2028\u2029", " "))
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plain(value: str, limit: int | None = None) -> str:
    r"""A value from events as one line of plain text: line breaks (``\n``, ``\r``, U+2028,
    U+2029) and tabs become spaces, other control characters and bidi marks become U+FFFD
    (visible, so nothing hides), and the text is cut to ``limit`` characters with an ellipsis.

    >>> plain("fraud\nRESOLVED\x1b[2J")
    'fraud RESOLVED\ufffd[2J'
    >>> plain("a" * 10, limit=5)
    'aaaa…'
    """
    text = _CONTROLS.sub("\ufffd", value.translate(_WHITESPACE_CONTROLS))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


_TEXT_FIELDS = ("rule", "model", "model_version", "feature", "segment", "metric", "message")


def plain_alert(alert: AlertRow) -> AlertRow:
    """The alert with :func:`plain` applied to every text a person may read (names, message);
    keys (``dedup_key``) and numbers are left as they are."""
    changed = {f: plain(getattr(alert, f)) for f in _TEXT_FIELDS}
    if all(changed[f] == getattr(alert, f) for f in _TEXT_FIELDS):
        return alert
    return msgspec.structs.replace(alert, **changed)
