"""Shared inputs of the event tests: valid messages to vary, the decoders, the reasons."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings

from drifthouse.events import EventDecoder, LabelEvent, MetricEvent, PredictionEvent

#: The fields of a prediction event: where a refusal of a mutated valid event may point.
FIELDS = {
    "model",
    "model_version",
    "ts",
    "event_id",
    "features",
    "prediction",
    "predicted_class",
    "latency_ms",
    "status",
    "segment",
}
REASONS = {
    "too_large",
    "invalid_json",
    "schema",
    "non_finite",
    "future_ts",
    "implausible_ts",
    "too_many_segments",
}


NOW = 1_714_564_800_000  # 2024-05-01T12:00:00Z


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


PREDICTIONS = EventDecoder(PredictionEvent)


LABELS = EventDecoder(LabelEvent)


METRICS = EventDecoder(MetricEvent)


def prediction(**fields: Any) -> bytes:
    """A valid prediction event as JSON, with ``fields`` replaced (``...`` removes a field)."""
    obj: dict[str, Any] = {
        "model": "fraud",
        "ts": NOW,
        "features": {"amount": 12.5, "country": "DE", "new": True, "age": None},
    }
    obj.update(fields)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def raw_prediction(fragment: str) -> bytes:
    """A prediction event whose JSON text ends with ``fragment`` (literals json.dumps can't write)."""
    return f'{{"model": "fraud", "ts": {NOW}, {fragment}}}'.encode()
