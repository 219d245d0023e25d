"""Which store errors a retry may fix, decided in one place (``sinks.store.translate``)."""

from __future__ import annotations

import struct

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from drifthouse.errors import RowsRefused, StoreError, StoreUnavailable
from drifthouse.sinks.store import insert, translate


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(
            DatabaseError(
                "Code: 252. DB::Exception: Too many partitions for single INSERT block (more "
                "than 100). The limit is controlled by 'max_partitions_per_insert_block' setting.",
                code=252,
            ),
            StoreError,
            id="too-many-partitions-in-one-insert",
        ),
        pytest.param(
            DatabaseError(
                "Code: 252. DB::Exception: Too many parts (3001 with average size of 1.00 KiB) "
                "in table 'drifthouse.metrics'. Merges are processing significantly slower than "
                "inserts. (TOO_MANY_PARTS)",
                code=252,
            ),
            StoreUnavailable,
            id="too-many-parts-merges-behind",
        ),
        pytest.param(
            DatabaseError("Code: 202. DB::Exception: Too many simultaneous queries.", code=202),
            StoreUnavailable,
            id="too-many-simultaneous-queries",
        ),
        pytest.param(
            DatabaseError("HTTP status 503: Code: 159. DB::Exception: Timeout exceeded"),
            StoreUnavailable,
            id="timeout-code-in-text",
        ),
        pytest.param(
            DatabaseError(
                "HTTP status 500: Code: 469. DB::Exception: Constraint `c` for table t is "
                "violated at row 2. (VIOLATED_CONSTRAINT)",
                code=469,
            ),
            RowsRefused,
            id="constraint-over-http-500",
        ),
        pytest.param(
            DatabaseError("Code: 60. DB::Exception: Table x.nope does not exist.", code=60),
            StoreError,
            id="unknown-table",
        ),
        pytest.param(
            DatabaseError("Code: 16. DB::Exception: No such column n in table", code=16),
            StoreError,
            id="no-such-column",
        ),
        pytest.param(
            DatabaseError("HTTP status 502: Bad Gateway"), StoreUnavailable, id="5xx-without-code"
        ),
        pytest.param(
            DatabaseError("HTTP status 429: slow down"), StoreUnavailable, id="429-without-code"
        ),
        pytest.param(
            DataError("Unable to create native array for column `v`: error"),
            RowsRefused,
            id="cannot-encode",
        ),
        pytest.param(OperationalError("connection refused"), StoreUnavailable, id="unreachable"),
        pytest.param(ConnectionResetError("reset"), StoreUnavailable, id="reset"),
    ],
)
def test_errors_are_retryable_or_not(exc: BaseException, expected: type[StoreError]) -> None:
    got = translate(exc, "inserting 3 rows into metrics")
    assert type(got) is expected
    assert "inserting 3 rows into metrics" in str(got)


class _Encoding:
    """A client whose insert fails as clickhouse-connect does on a value it cannot encode."""

    database = "drifthouse"

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def insert(self, *args: object, **kwargs: object) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(AttributeError("'int' object has no attribute 'encode'"), id="str-column"),
        pytest.param(struct.error("required argument is not a float"), id="float-column"),
        pytest.param(TypeError("an integer is required"), id="int-column"),
    ],
)
def test_values_that_cannot_be_encoded_are_refused_rows(error: BaseException) -> None:
    with pytest.raises(RowsRefused, match="cannot take the values while inserting into t"):
        insert("inserting into t", _Encoding(error), "t", [[1]])
