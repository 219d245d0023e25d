"""Opening the store (a ClickHouse server or the embedded engine) and translating its errors.

Every call into clickhouse-connect goes through :func:`call` (inserts through :func:`insert`),
which turns third-party errors into, decided here and nowhere else:

- :class:`~drifthouse.errors.StoreUnavailable`: connection refused, timeouts, 429, a 5xx without
  a ClickHouse error code, and server codes describing its state (too many simultaneous queries,
  too many parts while merges catch up, memory, read-only replica): a retry may help;
- :class:`~drifthouse.errors.RowsRefused`: codes about some rows' values (a constraint they break,
  a value out of range, a type it cannot take) and rows clickhouse-connect cannot encode: a retry
  will not help, but the other rows of the insert may go in;
- :class:`~drifthouse.errors.StoreError`: everything else (syntax, missing tables or columns,
  limits such as too many partitions in one insert block): a retry will not help.

A ClickHouse error code wins over the HTTP status: a server answers 500 for a broken constraint
too. Messages never contain the password of the DSN.

Example
-------
>>> client = open_store("chdb:///tmp/drifthouse-doctest", database="drifthouse")  # doctest: +SKIP
>>> client.command("SELECT 1")  # doctest: +SKIP
1
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from drifthouse.errors import RowsRefused, StoreError, StoreUnavailable
from drifthouse.files import private_dir

__all__ = ["Client", "call", "embedded_folder", "insert", "open_store", "redact", "translate"]

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
        # TOO_MANY_PARTS also names a limit no retry lifts: see _PERMANENT_MESSAGES.
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
    }
)
# Transient codes whose message, in some cases, names a limit of the request instead.
_PERMANENT_MESSAGES = (
    re.compile(
        r"partitions for single INSERT block", re.IGNORECASE
    ),  # 252, max_partitions_per_insert_block
)
# Codes about the values of some rows: the other rows of the insert may go in.
_ROW_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        117,  # INCORRECT_DATA
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT
    }
)
# Codes that a missing table, column or database gives: `drifthouse migrate` creates them.
_SCHEMA_CODES = frozenset({16, 60, 81})  # NO_SUCH_COLUMN_IN_TABLE, UNKNOWN_TABLE, UNKNOWN_DATABASE
# What clickhouse-connect raises when a row's value does not fit its column's type.
_ENCODE_ERRORS = (TypeError, ValueError, AttributeError, OverflowError, struct.error)
_HTTP_STATUS = re.compile(r"HTTP status (\d{3})")


def _not_an_encoding_error(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Error serializing column")


# clickhouse-connect logs a traceback for every value it cannot encode, then raises; the sink
# reports the same error once per refusal (while it halves an insert, it meets it many times).
logging.getLogger("clickhouse_connect.driver.transform").addFilter(_not_an_encoding_error)
_secrets: set[str] = set()


def redact(text: str) -> str:
    """``text`` with every password seen by :func:`open_store` replaced by ``***``."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def translate(exc: BaseException, doing: str) -> StoreError:
    """The drifthouse error for a clickhouse-connect (or socket) error raised while ``doing``."""
    text = redact(str(exc)) or type(exc).__name__
    if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
        return StoreUnavailable(f"ClickHouse is unreachable while {doing}: {text}")
    code = getattr(exc, "code", None)
    if code is None:
        code = _code_in(text)
    if isinstance(exc, DataError) and code is None:  # raised while encoding, before sending
        return RowsRefused(f"ClickHouse cannot take the values while {doing}: {text}")
    if code is not None:
        if code in _TRANSIENT_CODES and not any(p.search(text) for p in _PERMANENT_MESSAGES):
            return StoreUnavailable(f"ClickHouse is busy or failing while {doing}: {text}")
        if code in _ROW_CODES:
            return RowsRefused(f"ClickHouse refused rows while {doing}: {text}")
        hint = "; run `drifthouse migrate`" if code in _SCHEMA_CODES else ""
        return StoreError(f"ClickHouse rejected {doing}: {text}{hint}")
    status = _HTTP_STATUS.search(text)
    if status and (status.group(1) == "429" or status.group(1)[0] == "5"):
        return StoreUnavailable(f"ClickHouse is busy or failing while {doing}: {text}")
    return StoreError(f"ClickHouse rejected {doing}: {text}")


_CODE = re.compile(r"\bCode:\s*(\d+)")


def _code_in(text: str) -> int | None:
    match = _CODE.search(text)
    return int(match.group(1)) if match else None


def call(doing: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)``, translating store errors once, here at the edge."""
    try:
        return fn(*args, **kwargs)
    except (DatabaseError, OSError) as exc:
        raise translate(exc, doing) from exc


def insert(doing: str, client: Client, table: str, columns: list[list[Any]], **kwargs: Any) -> None:
    """``client.insert(table, columns, **kwargs)`` with errors translated, including the
    ``TypeError``-like errors clickhouse-connect raises for a value it cannot encode."""
    try:
        client.insert(table, columns, **kwargs)
    except (DatabaseError, OSError) as exc:
        raise translate(exc, doing) from exc
    except _ENCODE_ERRORS as exc:
        raise RowsRefused(
            f"ClickHouse cannot take the values while {doing}: {type(exc).__name__}: {redact(str(exc))}"
        ) from exc


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
    folder = embedded_folder(dsn)
    if folder is not None:
        client = _open_embedded(dsn, folder)
    else:
        client, database = _open_server(
            dsn,
            database,
            connect_timeout=connect_timeout,
            send_receive_timeout=send_receive_timeout,
            compress=compress,
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


def embedded_folder(dsn: str) -> str | None:
    """The data folder an embedded-engine DSN names; ``None`` for a server's DSN.

    >>> embedded_folder("chdb:///var/lib/drifthouse"), embedded_folder("http://ch:8123")
    ('/var/lib/drifthouse', None)
    """
    if not dsn.startswith("chdb:"):
        return None
    return dsn[len("chdb://") :] if dsn.startswith("chdb://") else dsn[len("chdb:") :]


def _open_embedded(dsn: str, path: str) -> Client:
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
    return call(
        f"opening the embedded store at {path}",
        clickhouse_connect.get_client,
        dsn=f"chdb://{path}",
    )


def _open_server(
    dsn: str,
    database: str,
    *,
    connect_timeout: float,
    send_receive_timeout: float,
    compress: bool | None,
) -> tuple[Client, str]:
    """A client of the server ``dsn`` names, and the database (the URL's path, else ``database``)."""
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
    return client, database
