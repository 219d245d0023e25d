"""Build reference profiles from files: JSONL prediction events, CSV and Parquet tables.

:func:`build_profile_from_file` is what ``drifthouse profile`` calls. The profile's
``source_digest`` is the SHA-256 of the file's bytes, so a profile names exactly what it was
built from.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from drifthouse.config import MetricsConfig
from drifthouse.detectors.reference import Kind, Profile, ProfileSettings, prediction_score
from drifthouse.errors import DecodeError, ProfileError
from drifthouse.events import check_served_class
from drifthouse.profiles.columns import NUMERIC_SHARE, build_profile

__all__ = [
    "build_profile_from_file",
    "file_digest",
    "profile_from_csv",
    "profile_from_events",
    "profile_from_jsonl",
    "profile_from_parquet",
]

Format = Literal["jsonl", "csv", "parquet"]
_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: Columns of a table that are event fields, never features (docs/events.md).
_META = ("model", "model_version", "event_id", "segment")
_TS_NAMES = ("ts", "timestamp")


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _settings(settings: MetricsConfig | ProfileSettings | None) -> MetricsConfig | ProfileSettings:
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


def _is_number(v: object) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def _kinds_for(
    kinds: Mapping[str, Kind] | None, selected: Sequence[str], names: Iterable[str]
) -> dict[str, Kind]:
    """The forced kinds of the selected features; a name the data lacks stays, to be refused."""
    known = set(names)
    return {n: k for n, k in (kinds or {}).items() if n in selected or n not in known}


def _select(
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


def profile_from_jsonl(
    path: str | Path,
    *,
    model: str,
    model_version: str,
    created_at: str,
    settings: MetricsConfig | ProfileSettings | None = None,
    label: str | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    kinds: Mapping[str, Kind] | None = None,
    threshold: float = 0.5,
    task: Literal["auto", "classification", "regression"] = "auto",
) -> Profile:
    """Profile prediction events (one JSON object a line, docs/events.md) of ``model``.

    Events of other models are skipped. ``label`` names a top-level field holding the true
    label (default ``label`` when present). Blank lines are skipped; a line that is not a JSON
    object raises :class:`ProfileError` naming it.
    """
    decoder = msgspec.json.Decoder()
    rows: list[dict[str, Any]] = []
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                event = decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise ProfileError(
                    f"{path}:{lineno}: not valid JSON ({exc}); fix or remove the line"
                ) from exc
            if not isinstance(event, dict):
                raise ProfileError(
                    f"{path}:{lineno}: expected a JSON object (got {type(event).__name__})"
                )
            if event.get("model", model) != model:
                continue
            feats = event.get("features")
            if not isinstance(feats, dict):
                raise ProfileError(
                    f"{path}:{lineno}: at `$.features`: expected an object of feature values (got {type(feats).__name__})"
                )
            for field, what in (("latency_ms", "a number"), ("status", "an integer HTTP status")):
                v = event.get(field)
                if v is not None and (
                    not _is_number(v) or (field == "status" and not float(v).is_integer())
                ):
                    raise ProfileError(
                        f"{path}:{lineno}: at `$.{field}`: expected {what}; got {v!r}"
                    )
            if event.get("predicted_class") is not None:
                try:  # the event contract's rule, so a profile takes what a worker takes
                    check_served_class(event.get("prediction"), event["predicted_class"])
                except DecodeError as exc:
                    raise ProfileError(f"{path}:{lineno}: {exc}") from exc
            rows.append(event)
    if not rows:
        raise ProfileError(f"{path}: no events of model {model!r}; check --model")
    if label is not None and not any(label in e for e in rows):
        raise ProfileError(f"{path}: no event has the label field {label!r}")
    return profile_from_events(
        rows,
        model=model,
        model_version=model_version,
        created_at=created_at,
        source_digest=file_digest(path),
        settings=settings,
        label=label,
        include=include,
        exclude=exclude,
        kinds=kinds,
        threshold=threshold,
        task=task,
    )


def profile_from_events(
    rows: Sequence[Mapping[str, Any]],
    *,
    model: str,
    model_version: str,
    created_at: str,
    source_digest: str,
    settings: MetricsConfig | ProfileSettings | None = None,
    label: str | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    kinds: Mapping[str, Kind] | None = None,
    threshold: float = 0.5,
    task: Literal["auto", "classification", "regression"] = "auto",
) -> Profile:
    """Profile prediction events given as JSON-like mappings (``features``, ``prediction``,
    ``latency_ms``, ``status``, and the label under ``label``), with the rules of
    :func:`profile_from_jsonl`: the automatic reference of a model is built from its first
    traffic with this function, so its feature kinds are those ``drifthouse profile`` infers."""
    label_key = label or "label"
    names: dict[str, None] = {}
    for event in rows:
        names.update(dict.fromkeys(event["features"]))
    selected = _select(names, include, exclude)
    features = {n: [e["features"].get(n) for e in rows] for n in selected}
    has = {k: any(k in e for e in rows) for k in ("prediction", label_key, "latency_ms", "status")}
    return build_profile(
        model=model,
        model_version=model_version,
        created_at=created_at,
        source_digest=source_digest,
        settings=_settings(settings),
        features=features,
        prediction=[prediction_score(e.get("prediction"), e.get("predicted_class")) for e in rows]
        if has["prediction"]
        else None,
        label=[e.get(label_key) for e in rows] if has[label_key] else None,
        latency_ms=[e.get("latency_ms") for e in rows] if has["latency_ms"] else None,
        status=[e.get("status", 200) for e in rows] if has["status"] else None,
        threshold=threshold,
        task=task,
        kinds=_kinds_for(kinds, selected, names),
    )


# What a CSV reader takes for a number: decimal (sign, digits, fraction, exponent) or infinity;
# NaN spellings are already nulls (pyarrow's default null values).
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
        keep = [i for i, m in enumerate(columns["model"]) if m is None or m == model]
        if not keep:
            raise ProfileError(
                f"{path}: no rows of model {model!r} in column 'model'; check --model"
            )
        rows = keep
        idx = np.asarray(keep, dtype=np.intp)
        columns = {
            k: v[idx] if isinstance(v, np.ndarray) else [v[i] for i in keep]
            for k, v in columns.items()
        }
    special = {ts_col, pred_col, label_col, lat_col, status_col, *_META} - {None}
    selected = _select([n for n in names if n not in special], include, exclude)
    kinds = kinds or {}
    for n in (*selected, pred_col):
        if n is not None and isinstance(columns[n], list) and kinds.get(n) != "categorical":
            columns[n] = _numbers_in_text(columns[n], force=kinds.get(n) == "numeric")

    def num(col: str | None) -> Any:
        return None if col is None else columns[col]

    def checked(col: str | None, *, status: bool = False) -> Any:
        # Latency and status have no type_error counter: an odd cell is named, not guessed at.
        if col is None:
            return None
        values = columns[col]
        if isinstance(values, list):  # text: pyarrow met a cell that is not a number
            values = _numbers_in_text(values, force=True)
        for i, v in enumerate(values.tolist() if isinstance(values, np.ndarray) else values):
            if v is None or (type(v) is float and v != v):
                continue
            if not _is_number(v) or (status and not float(v).is_integer()):
                expected = "an integer HTTP status" if status else "a number"
                raise ProfileError(
                    f"{path}: column {col!r} row {rows[i] + 1}: expected {expected}; got {v!r}"
                )
        return values

    return build_profile(
        model=model,
        model_version=model_version,
        created_at=created_at,
        source_digest=file_digest(path),
        settings=_settings(settings),
        features={n: columns[n] for n in selected},
        prediction=num(pred_col),
        label=num(label_col),
        latency_ms=checked(lat_col),
        status=[None if v is None else int(v) for v in checked(status_col, status=True)]
        if status_col
        else None,
        threshold=threshold,
        task=task,
        kinds=_kinds_for(kinds, selected, names),
    )


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


def build_profile_from_file(
    path: str | Path,
    *,
    model: str,
    model_version: str,
    fmt: Format | None = None,
    timestamp: str | None = None,
    prediction: str | None = None,
    label: str | None = None,
    latency: str | None = None,
    status: str | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    kinds: Mapping[str, Kind] | None = None,
    settings: MetricsConfig | ProfileSettings | None = None,
    created_at: str,
    threshold: float = 0.5,
    task: Literal["auto", "classification", "regression"] = "auto",
) -> Profile:
    """Build ``model``'s profile from a file; ``fmt`` defaults to the file's suffix.

    JSONL files hold prediction events (``timestamp``, ``prediction``, ``latency`` and
    ``status`` do not apply: the event fields are used); CSV and Parquet hold one row per
    prediction. ``created_at`` is an ISO 8601 string the caller chooses (the profile never reads
    the clock).
    """
    p = Path(path)
    if not p.is_file():
        raise ProfileError(f"{p}: no such file; pass a CSV, Parquet or JSONL file")
    if fmt is None:
        fmt = _SUFFIXES.get(p.suffix.lower())
        if fmt is None:
            raise ProfileError(
                f"{p}: cannot tell the format from the suffix {p.suffix!r}; pass fmt='csv', 'parquet' or 'jsonl'"
            )
    if fmt == "jsonl":
        return profile_from_jsonl(
            p, model=model, model_version=model_version, created_at=created_at, settings=settings,
            label=label, include=include, exclude=exclude, kinds=kinds, threshold=threshold, task=task,
        )  # fmt: skip
    reader = profile_from_csv if fmt == "csv" else profile_from_parquet
    if fmt not in ("csv", "parquet"):
        raise ProfileError(f"unknown format {fmt!r}; use 'csv', 'parquet' or 'jsonl'")
    return reader(
        p, model=model, model_version=model_version, created_at=created_at, settings=settings,
        timestamp=timestamp, prediction=prediction, label=label, latency=latency, status=status,
        include=include, exclude=exclude, kinds=kinds, threshold=threshold, task=task,
    )  # fmt: skip
