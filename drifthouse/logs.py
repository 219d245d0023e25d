"""Structured logging: an event name plus key/values, e.g.
``log.info("sink.flushed", table="metrics", rows=120)``.

Values whose key looks like a secret are masked before anything is rendered, as a second line of
defence behind pydantic's ``SecretStr``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure", "get_logger", "hide_secret", "scrub"]

_SECRET_MARKERS = ("password", "token", "secret", "routing_key", "webhook_url", "api_key")


def _mask_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(marker in key.lower() for marker in _SECRET_MARKERS):
            event[key] = "**********"
    return event


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (tests and embedders swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_SECRETS: set[str] = set()
_MASK = "**********"


def scrub(text: str) -> str:
    """``text`` with every secret drifthouse knows (see :func:`hide_secret`) masked, as text
    and as it appears inside the repr of bytes (clients log raw protocol frames)."""
    for secret in _SECRETS:
        for form in {secret, repr(secret.encode("utf-8"))[2:-1]}:
            if form in text:
                text = text.replace(form, _MASK)
    return text


class _SecretFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            text = record.getMessage()
            masked = scrub(text)
            if masked != text:
                record.msg, record.args = masked, None
        return True


_FILTER = _SecretFilter()


def hide_secret(secret: str | None, *loggers: str) -> None:
    """Remember ``secret`` so :func:`scrub` masks it, and mask it in the records of the given
    stdlib loggers (third-party clients that log URLs or request bodies at DEBUG)."""
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)
    for name in loggers:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def configure(*, level: str = "INFO", json: bool = False) -> None:
    """Set up structlog once per process: key/value lines on stderr (JSON with ``json=True``)."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger bound to a component name.

    Used as a library (no CLI), drifthouse logs to stderr at INFO: never to stdout, which
    belongs to the program embedding it.
    """
    if not structlog.is_configured():
        configure()
    return structlog.get_logger(component=name)
