"""Opening the store (a ClickHouse server or the embedded engine) and translating its errors.

Every call into clickhouse-connect goes through :func:`call`, which turns third-party errors into
:class:`~drifthouse.errors.StoreUnavailable` (connection refused, timeouts, 429/5xx, transient server
errors: a retry may help) or :class:`~drifthouse.errors.StoreError` (syntax, types, missing tables:
retrying will not help). Messages never contain the password of the DSN.

Example
-------
>>> client = open_store("chdb:///tmp/drifthouse-doctest", database="drifthouse")  # doctest: +SKIP
>>> client.command("SELECT 1")  # doctest: +SKIP
1
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from drifthouse.errors import StoreError, StoreUnavailable
from drifthouse.files import private_dir

__all__ = ["Client", "call", "is_embedded", "open_store", "redact", "translate"]

Client = Any  # clickhouse_connect.driver.client.Client (untyped library)
T = TypeVar("T")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ClickHouse error codes that describe the server's state, not the request: retry later.
_TRANSIENT_CODES = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY (replica in read-only mode)
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
    }
)
_HTTP_STATUS = re.compile(r"HTTP status (\d{3})")
_secrets: set[str] = set()


def redact(text: str) -> str:
    """``text`` with every password seen by :func:`open_store` replaced by ``***``."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def is_embedded(dsn: str) -> bool:
    """Whether ``dsn`` names the embedded engine (``chdb:///abs/path``)."""
    return dsn.startswith("chdb:")


def translate(exc: BaseException, doing: str) -> StoreError:
    """The drifthouse error for a clickhouse-connect (or socket) error raised while ``doing``."""
    text = redact(str(exc)) or type(exc).__name__
    if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
        return StoreUnavailable(f"ClickHouse is unreachable while {doing}: {text}")
    code = getattr(exc, "code", None)
    status = _HTTP_STATUS.search(text)
    if code in _TRANSIENT_CODES or (
        status and (status.group(1) == "429" or status.group(1)[0] == "5")
    ):
        return StoreUnavailable(f"ClickHouse is busy or failing while {doing}: {text}")
    return StoreError(f"ClickHouse rejected {doing}: {text}")


def call(doing: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)``, translating store errors once, here at the edge."""
    try:
        return fn(*args, **kwargs)
    except (DatabaseError, OSError) as exc:
        raise translate(exc, doing) from exc


def open_store(
    dsn: str,
    database: str = "drifthouse",
    *,
    create_database: bool = True,
    connect_timeout: float = 10.0,
    send_receive_timeout: float = 60.0,
    compress: bool | None = None,
) -> Client:
    """Open a clickhouse-connect client for ``dsn`` with ``database`` as its current database.

    Parameters
    ----------
    dsn:
        ``chdb:///absolute/folder`` for the embedded engine, or
        ``http(s)://user:password@host:8123/database`` for a server; a database in the URL path
        overrides ``database``. URL query parameters ``compress`` (``true``/``false``) and
        ``secure`` are honoured.
    database:
        Created when missing (``create_database``), then used for unqualified table names.
    """
    if dsn.startswith("chdb:"):
        path = dsn[len("chdb://") :] if dsn.startswith("chdb://") else dsn[len("chdb:") :]
        if not path.startswith("/"):
            raise StoreError(
                f"the embedded store needs an absolute folder (got {dsn!r}); write 'chdb:///absolute/path' "
                "or give 'store: {path: ./folder}' in the config, which drifthouse resolves for you"
            )
        try:
            private_dir(path)  # tables hold events and alerts: the owner's only
        except OSError as exc:
            raise StoreError(
                f"cannot create the embedded store folder {path}: {exc.strerror}; "
                "set store.path to a writable folder"
            ) from exc
        client = call(
            f"opening the embedded store at {path}",
            clickhouse_connect.get_client,
            dsn=f"chdb://{path}",
        )
    else:
        parts = urlsplit(dsn)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(
                f"cannot use store DSN {redact(dsn)!r}: expected 'chdb:///absolute/path' or "
                "'http(s)://user:password@host:8123/database'"
            )
        options = dict(parse_qsl(parts.query))
        password = unquote(parts.password or "")
        if password:
            _secrets.add(password)
        if parts.path.strip("/"):
            database = parts.path.strip("/")
        secure = parts.scheme == "https" or options.get("secure", "").lower() in ("1", "true")
        use_compress: bool = (
            compress
            if compress is not None
            else options.get("compress", "true").lower() not in ("0", "false")
        )
        where = f"{parts.scheme}://{parts.hostname}:{parts.port or (8443 if secure else 8123)}"
        client = call(
            f"connecting to {where}",
            clickhouse_connect.get_client,
            host=parts.hostname,
            port=parts.port or (8443 if secure else 8123),
            username=unquote(parts.username or "default"),
            password=password,
            secure=secure,
            compress=use_compress,
            connect_timeout=connect_timeout,
            send_receive_timeout=send_receive_timeout,
            autogenerate_session_id=False,
        )
    if not _IDENTIFIER.fullmatch(database):
        raise StoreError(
            f"database must be a plain identifier such as 'drifthouse' (got {database!r})"
        )
    if create_database:
        call(
            f"creating database {database}",
            client.command,
            f"CREATE DATABASE IF NOT EXISTS `{database}`",
        )
    client.database = database
    return client
