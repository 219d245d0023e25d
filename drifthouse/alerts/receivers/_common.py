"""Helpers shared by the receivers: ``Retry-After`` parsing and alert rendering."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from drifthouse.rows import AlertRow

__all__ = ["fmt_value", "grafana_link", "iso", "parse_retry_after"]


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
