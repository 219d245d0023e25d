"""Build reference profiles from files: JSONL prediction events, CSV and Parquet tables.

:func:`build_profile_from_file` is what ``drifthouse profile`` calls. The profile's
``source_digest`` is the SHA-256 of the file's bytes, so a profile names exactly what it was
built from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from drifthouse.config import MetricsConfig
from drifthouse.detectors.reference import Kind, Profile, ProfileSettings, prediction_score
from drifthouse.errors import DecodeError, ProfileError
from drifthouse.events import check_served_class
from drifthouse.profiles.columns import build_profile
from drifthouse.profiles.tables import (
    file_digest,
    is_number,
    kinds_for,
    profile_from_csv,
    profile_from_parquet,
    select_features,
    settings_or_default,
)

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
                    not is_number(v) or (field == "status" and not float(v).is_integer())
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
    selected = select_features(names, include, exclude)
    features = {n: [e["features"].get(n) for e in rows] for n in selected}
    has = {k: any(k in e for e in rows) for k in ("prediction", label_key, "latency_ms", "status")}
    return build_profile(
        model=model,
        model_version=model_version,
        created_at=created_at,
        source_digest=source_digest,
        settings=settings_or_default(settings),
        features=features,
        prediction=[prediction_score(e.get("prediction"), e.get("predicted_class")) for e in rows]
        if has["prediction"]
        else None,
        label=[e.get(label_key) for e in rows] if has[label_key] else None,
        latency_ms=[e.get("latency_ms") for e in rows] if has["latency_ms"] else None,
        status=[e.get("status", 200) for e in rows] if has["status"] else None,
        threshold=threshold,
        task=task,
        kinds=kinds_for(kinds, selected, names),
        raw_predictions=[e.get("prediction") for e in rows] if has["prediction"] else None,
    )


# What a CSV reader takes for a number: decimal (sign, digits, fraction, exponent) or infinity;
# NaN spellings are already nulls (pyarrow's default null values).
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
