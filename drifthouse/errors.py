"""The one error hierarchy of drifthouse.

Every error drifthouse raises on purpose derives from :class:`DrifthouseError`; errors of
third-party libraries are translated once, at the edge, with ``raise ... from exc``::

    DrifthouseError
    ├── ConfigError            bad configuration or rules (exit code 2)
    ├── UsageError             bad command-line arguments (exit code 2)
    ├── DecodeError            one bad input event (dead-lettered, never fatal)
    │   └── LateEventError     an event behind the watermark
    ├── ProfileError           a reference profile that cannot be built or read
    ├── SketchError            inputs a sketch or statistic cannot take
    ├── StoreError             ClickHouse failed; a retry will not help
    │   ├── StoreUnavailable   unreachable or busy; a retry may help
    │   ├── SpoolFull          the on-disk spool is full; slow down
    │   ├── RowsRefused        some rows of an insert break a constraint, type or range
    │   └── RowsNotStored      a bounded run ends with rows refused or still spooled
    ├── NotifyError            a receiver failed to take a notification
    │   └── NotifyRetryable    429, 5xx or a connection error; retry later
    └── SourceError            a source (Kafka topic, file) cannot be read
        └── InputsNotUsed      a bounded run ends with events or labels left out of the store

Messages say what went wrong, where, what was expected, what came, and the fix.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DecodeError",
    "DrifthouseError",
    "InputsNotUsed",
    "LateEventError",
    "NotifyError",
    "NotifyRetryable",
    "ProfileError",
    "RowsNotStored",
    "RowsRefused",
    "SketchError",
    "SourceError",
    "SpoolFull",
    "StoreError",
    "StoreHeld",
    "StoreUnavailable",
    "UsageError",
]


class DrifthouseError(Exception):
    """Root of every error drifthouse raises on purpose."""


class ConfigError(DrifthouseError):
    """Configuration or rules are invalid.

    ``problems`` lists every problem found, each as ``(location, message)``, so that
    ``drifthouse check`` can report them all at once rather than one per run.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems: list[tuple[str, str]] = problems or []


class UsageError(DrifthouseError):
    """Command-line arguments are invalid."""


class DecodeError(DrifthouseError):
    """One input event cannot be decoded.

    Parameters
    ----------
    reason:
        A short machine-readable reason (``invalid_json``, ``schema``, ``non_finite``,
        ``future_ts``, ``too_large``, ``late``, ...), used in dead-letter headers.
    path:
        The JSON path of the offending field, e.g. ``$.features.amount`` (``$`` for the whole event).
    message:
        What was expected and what came.
    """

    def __init__(self, reason: str, path: str, message: str) -> None:
        super().__init__(f"{message} - at `{path}`")
        self.reason = reason
        self.path = path
        self.detail = message


class LateEventError(DecodeError):
    """An event arrived after its windows were closed by the watermark."""


class ProfileError(DrifthouseError):
    """A reference profile cannot be built, read or used."""


class SketchError(DrifthouseError):
    """A sketch or statistic was given inputs it cannot take (shape, edges, types)."""


class StoreError(DrifthouseError):
    """ClickHouse rejected or failed a request."""


class StoreUnavailable(StoreError):
    """ClickHouse cannot be reached; a retry later may succeed."""


class StoreHeld(StoreUnavailable):
    """The embedded store's folder is held by another process (a worker): one process per folder."""


class SpoolFull(StoreError):
    """The on-disk spool for an unreachable store is full; the caller must slow down."""


class RowsRefused(StoreError):
    """The store refused an insert because of some of its rows (a constraint they break, a value
    out of a column's range or type); a retry will not help, but the other rows may go in."""


class RowsNotStored(StoreError):
    """A bounded run (replay, demo) ends with rows the store refused or that still wait in the
    spool; its message says which table, how many rows, why and where they are kept."""


class NotifyError(DrifthouseError):
    """A receiver (Slack, PagerDuty, webhook, Kafka) did not take a notification."""


class NotifyRetryable(NotifyError):
    """A receiver failure that a later retry may fix (429, 5xx, connection errors).

    ``retry_after`` is the delay the receiver asked for, in seconds, when it said one.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceError(DrifthouseError):
    """A source (Kafka topic, file) cannot be read."""


class InputsNotUsed(SourceError):
    """A bounded run (replay) stored what it could but left events or labels out (dead-lettered,
    late, expired); its message says how many, why, where they are kept and the fix."""
