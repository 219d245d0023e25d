"""Event times (docs/events.md, "Time"): integer epoch milliseconds, UTC, and how to read them.

The JSON key ``ts`` holds integer epoch milliseconds or an RFC 3339 string with an offset or
``Z``; :func:`parse_ts` turns either (or an aware :class:`~datetime.datetime`) into the integer
the events carry. Times out of range say which units the number looks like.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec

from drifthouse.errors import DecodeError
from drifthouse.events.describe import describe, preview

__all__ = ["MAX_TS_MS", "MIN_TS_MS", "AwareDatetime", "iso", "parse_ts", "units_hint"]

# Event times before 2000-01-01 are refused by the decoders: such a time is nearly always epoch
# seconds (or a zero) sent where milliseconds are expected, and would land in 1970's windows.
MIN_TS_MS = 946_684_800_000
# DateTime64(3) in ClickHouse and Python's datetime both end in the year 9999.
MAX_TS_MS = 253_402_300_799_999

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
"""A datetime with an offset: what msgspec parses an RFC 3339 ``ts`` into (in C)."""


def parse_ts(value: int | str | datetime) -> int:
    """Normalise an event time to integer epoch milliseconds (UTC).

    ``value`` is integer epoch milliseconds, an RFC 3339 string with an offset or ``Z``, or an
    aware :class:`~datetime.datetime`. Fractions of a millisecond are truncated towards the past.

    >>> parse_ts("2024-05-01T14:00:00.250+02:00")
    1714564800250
    >>> parse_ts(1714564800250)
    1714564800250

    Raises
    ------
    DecodeError
        ``schema`` at ``$.ts`` when the value is not a valid timestamp or out of range.
    """
    if type(value) is int:
        ms = value
    elif isinstance(value, str):
        try:
            # The same RFC 3339 parser the decoder uses, so both accept the same texts.
            parsed = msgspec.convert(value, AwareDatetime)
        except msgspec.ValidationError as exc:
            if "timezone" in str(exc):
                raise DecodeError(
                    "schema",
                    "$.ts",
                    f"expected an RFC 3339 timestamp with an offset or 'Z' (a time without one is "
                    f"ambiguous); got string {preview(value)}: append 'Z' for UTC",
                ) from None
            raise DecodeError(
                "schema",
                "$.ts",
                f"expected an RFC 3339 timestamp such as '2024-05-01T12:00:00Z' or integer epoch "
                f"milliseconds; got string {preview(value)}",
            ) from None
        ms = (parsed - _EPOCH) // _ONE_MS
    elif isinstance(value, datetime) and value.utcoffset() is not None:
        ms = (value - _EPOCH) // _ONE_MS
    else:
        raise DecodeError(
            "schema",
            "$.ts",
            f"expected an RFC 3339 string or integer epoch milliseconds; got {describe(value)}",
        )
    if not 0 <= ms <= MAX_TS_MS:
        raise DecodeError(
            "schema",
            "$.ts",
            f"expected a time between 1970-01-01 and 9999-12-31 (epoch milliseconds 0..{MAX_TS_MS}); "
            f"got {preview(value)}{units_hint(ms)}",
        )
    return ms


def units_hint(ms: int) -> str:
    """What an out-of-range integer time probably is, when a change of units explains it."""
    if not -MAX_TS_MS * 1_000_000 <= ms <= MAX_TS_MS * 1_000_000:
        return ""  # no change of units explains it (and a float could not hold it)
    for unit, factor in (("seconds", 1000), ("microseconds", 1 / 1000), ("nanoseconds", 1e-6)):
        if MIN_TS_MS <= ms * factor <= MAX_TS_MS:
            fix = "multiply by 1000" if factor == 1000 else f"divide by {round(1 / factor):,}"
            return f": looks like epoch {unit} ({iso(int(ms * factor))}); send milliseconds ({fix})"
    return ""


def iso(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC (``2024-05-01T12:00:00.000Z``), for messages.

    >>> iso(1714564800000)
    '2024-05-01T12:00:00.000Z'
    """
    try:
        return (_EPOCH + ms * _ONE_MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except OverflowError:
        return f"{ms} ms"
