"""What every section of the configuration is built from (docs/configuration.md).

The strict model all sections derive from (unknown keys refused, values frozen, inputs never
echoed in errors), the duration field type, and the DSN that prints with its password masked.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, SecretStr

from drifthouse.durations import format_duration, parse_duration

__all__ = ["DurationMs", "SecretDsn", "Strict", "mask_dsn"]

DurationMs = Annotated[
    int,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""Milliseconds, written ``"30s"``, ``"15m"``, ``"1h"`` or as integer seconds; a dump writes
the shortest spelling (``"1500ms"``, ``"30s"``), which reads back as the same milliseconds."""


def mask_dsn(dsn: str) -> str:
    """A DSN fit to print: the password (and any ``password=`` query value) becomes ``***``.

    >>> mask_dsn("http://user:s3cret@clickhouse:8123/drifthouse")
    'http://user:***@clickhouse:8123/drifthouse'
    >>> mask_dsn("chdb:///var/lib/drifthouse")
    'chdb:///var/lib/drifthouse'
    """
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, has_password, _ = userinfo.partition(":")
            netloc = f"{user}:***@{hostport}" if has_password else netloc
        query = re.sub(r"(?i)((?:password|passwd|pwd|secret|token)=)[^&]*", r"\1***", parts.query)
        if netloc == parts.netloc and query == parts.query:
            return dsn
        rebuilt = f"{parts.scheme}://{netloc}{parts.path}"
        return (
            rebuilt
            + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else "")
        )
    except ValueError:
        return "***"


class SecretDsn(SecretStr):
    """A DSN kept secret because it may hold a password; prints with the password masked."""

    def _display(self) -> str:
        return mask_dsn(self.get_secret_value())


class Strict(BaseModel):
    """The base of every section: unknown keys are refused and values are frozen."""

    # hide_input_in_errors: a ValidationError printed anywhere must not echo a secret.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )
