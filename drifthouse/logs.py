"""Structured logging: an event name plus key/values, e.g.
``log.info("sink.flushed", table="metrics", rows=120)``.

Values whose key looks like a secret are masked before anything is rendered, as a second line of
defence behind pydantic's ``SecretStr``; every string value is then passed through :func:`scrub`,
which masks any piece (6 characters or more) of a secret drifthouse knows (:func:`hide_secret`)
and shows a secret URL (a Slack or generic webhook) as ``scheme://host/***``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import structlog

__all__ = [
    "MIN_PIECE",
    "configure",
    "forget_secrets",
    "get_logger",
    "hide_secret",
    "mask_url",
    "redact",
    "scrub",
]

_SECRET_MARKERS = ("password", "token", "secret", "routing_key", "webhook_url", "api_key")


def _mask_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(marker in key.lower() for marker in _SECRET_MARKERS):
            event[key] = "**********"
        elif _SECRETS:
            event[key] = _scrub_value(event[key])
    return event


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list | tuple):
        return type(value)(_scrub_value(v) for v in value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    return value


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (tests and embedders swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_SECRETS: set[str] = set()
_MASK = "**********"
MIN_PIECE = 6
"""The shortest run of a secret's characters :func:`redact` removes from a message."""


def mask_url(url: str) -> str:
    """A URL fit to print: ``scheme://host[:port]`` kept, user info dropped, path, query and
    fragment replaced by ``/***`` (a Slack webhook's path is its credential).

    >>> mask_url("https://hooks.slack.com/services/T000/B000/XXXX")
    'https://hooks.slack.com/***'
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "***"
    if not parts.scheme or not host:
        return "***"
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    if parts.path in ("", "/") and not parts.query and not parts.fragment:
        return shown + parts.path
    return shown + "/***"


def _secret_text(secret: str) -> str:
    """The part of a secret that is secret: a URL's host is not, its path, query and password are."""
    if "://" not in secret:
        return secret
    try:
        parts = urlsplit(secret)
    except ValueError:
        return secret
    if not parts.hostname:
        return secret
    rest = secret.split("://", 1)[1]
    return rest[len(rest.split("/", 1)[0]) :] or (parts.password or "")


def _forms(secret: str) -> set[str]:
    # As text and as it appears inside the repr of bytes (clients log raw protocol frames).
    return {secret, repr(secret.encode("utf-8"))[2:-1]}


def redact(text: str, secrets: Iterable[str], *, min_piece: int = MIN_PIECE) -> str:
    """``text`` without any of ``secrets``: a secret URL shows as :func:`mask_url` gives it,
    a whole secret as ``**********``, and so does any run of ``min_piece`` or more characters of
    one (an error message quoting 31 of a key's 32 characters, or its two ends, shows neither).

    >>> redact("bad key R0123456789abcdef0123456789abcd", ["R0123456789abcdef0123456789abcdeZ"])
    'bad key **********'
    """
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    for secret in ordered:
        if "://" in secret and secret in text:
            text = text.replace(secret, mask_url(secret))
    pieces: list[str] = []
    for secret in ordered:
        for form in _forms(secret):
            if form in text:
                text = text.replace(form, _MASK)
        pieces.extend(p for p in _forms(_secret_text(secret)) if len(p) >= min_piece)
    if not pieces:
        return text
    out: list[str] = []
    i = 0
    while i <= len(text) - min_piece:
        longest = 0
        for piece in pieces:
            if text[i : i + min_piece] not in piece:
                continue
            n = min_piece
            while i + n < len(text) and text[i : i + n + 1] in piece:
                n += 1
            longest = max(longest, n)
        if longest:
            out.append(_MASK)
            i += longest
        else:
            out.append(text[i])
            i += 1
    out.append(text[i:])
    return "".join(out)


def scrub(text: str) -> str:
    """``text`` with every secret drifthouse knows (see :func:`hide_secret`), and any piece of
    one, masked (see :func:`redact`)."""
    if not _SECRETS:
        return text
    return redact(text, _SECRETS)


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


def forget_secrets() -> None:
    """Forget every secret :func:`hide_secret` was given (a process running a new command)."""
    _SECRETS.clear()


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
