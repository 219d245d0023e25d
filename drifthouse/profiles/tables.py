"""Reference profiles from CSV and Parquet tables, and what building from any file shares.

A table's columns are features, except the event fields (``model``, ``ts``, ...) and the
columns named as prediction, label, latency and status; a ``model`` column keeps the rows of
the model profiled. Text cells that spell numbers are read as numbers (:func:`_numbers_in_text`).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drifthouse.config import MetricsConfig
from drifthouse.detectors.reference import Kind, Profile, ProfileSettings
from drifthouse.errors import ProfileError
from drifthouse.profiles.columns import NUMERIC_SHARE, build_profile

__all__ = [
    "file_digest",
    "is_number",
    "kinds_for",
    "profile_from_csv",
    "profile_from_parquet",
    "select_features",
    "settings_or_default",
]

_META = ("model", "model_version", "event_id", "segment")
_TS_NAMES = ("ts", "timestamp")


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def settings_or_default(
    settings: MetricsConfig | ProfileSettings | None,
) -> MetricsConfig | ProfileSettings:
    return settings if settings is not None else MetricsConfig()


def _pick(
    columns: Sequence[str], explicit: str | None, defaults: Sequence[str], what: str
) -> str | None:
    if explicit is not None:
        if explicit not in columns:
            raise ProfileError(
                f"{what} column {explicit!r} is not in the file (columns: {list(columns)})"
            )
        return explicit
    return next((c for c in defaults if c in columns), None)


def is_number(v: object) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def kinds_for(
    kinds: Mapping[str, Kind] | None, selected: Sequence[str], names: Iterable[str]
) -> dict[str, Kind]:
    """The forced kinds of the selected features; a name the data lacks stays, to be refused."""
    known = set(names)
    return {n: k for n, k in (kinds or {}).items() if n in selected or n not in known}


def select_features(
    names: Iterable[str], include: Sequence[str] | None, exclude: Sequence[str] | None
) -> list[str]:
    names = list(names)
    if include is not None:
        unknown = [n for n in include if n not in names]
        if unknown:
            raise ProfileError(
                f"include names features that are not in the data: {unknown} (features: {names})"
            )
        names = [n for n in names if n in include]
    if exclude is not None:
        names = [n for n in names if n not in exclude]
    return names


_NUMBER_TEXT = re.compile(
    r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*|\s*[+-]?inf(?:inity)?\s*",
    re.IGNORECASE,
)


def _numbers_in_text(values: list[Any], *, force: bool = False) -> list[Any]:
    """A text column whose cells are nearly all numbers (``NUMERIC_SHARE``) as numbers, its odd
    cells kept as text (to be counted as ``type_error``); any other column unchanged.

    CSV has no types: pyarrow reads a column as text as soon as one cell is not a number, and
    one ``?`` among 60,000 numbers would make the feature categorical. ``force`` converts
    whatever the share (a feature the caller says is numeric).
    """
    present = [v for v in values if v is not None]
    if not present:
        return values
    match = _NUMBER_TEXT.fullmatch
    parsed = sum(1 for v in present if isinstance(v, str) and match(v))
    if parsed < NUMERIC_SHARE * len(present) and not force:
        return values
    return [float(v) if isinstance(v, str) and match(v) else v for v in values]


def _arrow_columns(table: Any) -> dict[str, Any]:
    """Columns of a pyarrow table: float arrays for complete numeric columns (fast), lists
    otherwise (``None`` missing, NaN non-finite); meta columns as text."""
    import pyarrow as pa

    columns: dict[str, Any] = {}
    for name in table.column_names:
        col = table.column(name)
        t = col.type
        if name in _META:
            columns[name] = [None if v is None else str(v) for v in col.to_pylist()]
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            arr = col.to_numpy().astype(np.float64)
            complete = col.null_count == 0 and not np.isnan(arr).any()
            columns[name] = arr if complete else col.to_pylist()
        elif pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
            columns[name] = col.to_pylist()
        else:
            columns[name] = [None if v is None else str(v) for v in col.to_pylist()]
    return columns


def _table_profile(
    path: str | Path,
    columns: dict[str, Any],
    *,
    model: str,
    model_version: str,
    created_at: str,
    settings: MetricsConfig | ProfileSettings | None,
    timestamp: str | None,
    prediction: str | None,
    label: str | None,
    latency: str | None,
    status: str | None,
    include: Sequence[str] | None,
    exclude: Sequence[str] | None,
    kinds: Mapping[str, Kind] | None,
    threshold: float,
    task: Literal["auto", "classification", "regression"],
) -> Profile:
    names = list(columns)
    rows: Sequence[int] = range(max((len(v) for v in columns.values()), default=0))
    ts_col = _pick(names, timestamp, _TS_NAMES, "timestamp")
    pred_col = _pick(names, prediction, ("prediction",), "prediction")
    label_col = _pick(names, label, ("label",), "label")
    lat_col = _pick(names, latency, ("latency_ms",), "latency")
    status_col = _pick(names, status, ("status",), "status")
    if "model" in columns:
        rows, columns = _rows_of_model(path, columns, model)
    special = {ts_col, pred_col, label_col, lat_col, status_col, *_META} - {None}
    selected = select_features([n for n in names if n not in special], include, exclude)
    kinds = kinds or {}
    for n in (*selected, pred_col, label_col):  # labels: docs/statistics.md, "Reference profiles"
        if n is not None and isinstance(columns[n], list) and kinds.get(n) != "categorical":
            columns[n] = _numbers_in_text(columns[n], force=kinds.get(n) == "numeric")

    def num(col: str | None) -> Any:
        return None if col is None else columns[col]

    def checked(col: str | None, *, status: bool = False) -> Any:
        return None if col is None else _checked(path, col, columns[col], rows, status=status)

    return build_profile(
        model=model,
        model_version=model_version,
        created_at=created_at,
        source_digest=file_digest(path),
        settings=settings_or_default(settings),
        features={n: columns[n] for n in selected},
        prediction=num(pred_col),
        label=num(label_col),
        latency_ms=checked(lat_col),
        status=[None if v is None else int(v) for v in checked(status_col, status=True)]
        if status_col
        else None,
        threshold=threshold,
        task=task,
        kinds=kinds_for(kinds, selected, names),
    )


def _rows_of_model(
    path: str | Path, columns: dict[str, Any], model: str
) -> tuple[list[int], dict[str, Any]]:
    """The rows of ``model`` (or of no model) in a table with a ``model`` column, and the
    columns cut down to them."""
    keep = [i for i, m in enumerate(columns["model"]) if m is None or m == model]
    if not keep:
        raise ProfileError(f"{path}: no rows of model {model!r} in column 'model'; check --model")
    idx = np.asarray(keep, dtype=np.intp)
    return keep, {
        k: v[idx] if isinstance(v, np.ndarray) else [v[i] for i in keep] for k, v in columns.items()
    }


def _checked(
    path: str | Path, col: str, values: Any, rows: Sequence[int], *, status: bool = False
) -> Any:
    """A latency or status column, every cell a number (``status``: an integer) or missing.

    Latency and status have no type_error counter: an odd cell is named, not guessed at.
    """
    if isinstance(values, list):  # text: pyarrow met a cell that is not a number
        values = _numbers_in_text(values, force=True)
    for i, v in enumerate(values.tolist() if isinstance(values, np.ndarray) else values):
        if v is None or (type(v) is float and v != v):
            continue
        if not is_number(v) or (status and not float(v).is_integer()):
            expected = "an integer HTTP status" if status else "a number"
            raise ProfileError(
                f"{path}: column {col!r} row {rows[i] + 1}: expected {expected}; got {v!r}"
            )
    return values


def profile_from_csv(
    path: str | Path,
    *,
    model: str,
    model_version: str,
    created_at: str,
    settings: MetricsConfig | ProfileSettings | None = None,
    timestamp: str | None = None,
    prediction: str | None = None,
    label: str | None = None,
    latency: str | None = None,
    status: str | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    kinds: Mapping[str, Kind] | None = None,
    threshold: float = 0.5,
    task: Literal["auto", "classification", "regression"] = "auto",
) -> Profile:
    """Profile a CSV file with a header row.

    A column is numeric when at least 95% (``NUMERIC_SHARE``) of its non-empty cells are
    numbers; its other cells are then counted as ``type_error`` (with examples in the
    profile). Other columns are categorical (``true``/``false`` and text). Empty cells and
    pyarrow's null spellings (``NA``, ``NaN``, ``null``...) are missing. Columns named ``ts``/``timestamp``,
    ``prediction``, ``label``, ``latency_ms``, ``status``, ``model``, ``model_version``,
    ``event_id`` are taken as those fields unless other names are given; rows whose ``model``
    differs from ``model`` are skipped.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text ({exc})") from exc
    if not header:
        raise ProfileError(f"{path}: empty CSV file (expected a header row)")
    if len(set(header)) != len(header):
        raise ProfileError(f"{path}: duplicate column names in the header {header}")
    try:
        table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
    except (OSError, pa.ArrowException) as exc:
        raise ProfileError(f"{path}: cannot read CSV ({exc})") from exc
    columns = _arrow_columns(table)
    return _table_profile(
        path, columns, model=model, model_version=model_version, created_at=created_at, settings=settings,
        timestamp=timestamp, prediction=prediction, label=label, latency=latency, status=status,
        include=include, exclude=exclude, kinds=kinds, threshold=threshold, task=task,
    )  # fmt: skip


def profile_from_parquet(
    path: str | Path,
    *,
    model: str,
    model_version: str,
    created_at: str,
    settings: MetricsConfig | ProfileSettings | None = None,
    timestamp: str | None = None,
    prediction: str | None = None,
    label: str | None = None,
    latency: str | None = None,
    status: str | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    kinds: Mapping[str, Kind] | None = None,
    threshold: float = 0.5,
    task: Literal["auto", "classification", "regression"] = "auto",
) -> Profile:
    """Profile a Parquet file (read with pyarrow); columns as in :func:`profile_from_csv`.

    Integer and floating columns are numeric (null is missing, NaN non-finite); bool, string
    and other columns are categorical.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ProfileError(f"{path}: cannot read Parquet ({exc})") from exc
    columns = _arrow_columns(table)
    return _table_profile(
        path, columns, model=model, model_version=model_version, created_at=created_at, settings=settings,
        timestamp=timestamp, prediction=prediction, label=label, latency=latency, status=status,
        include=include, exclude=exclude, kinds=kinds, threshold=threshold, task=task,
    )  # fmt: skip
