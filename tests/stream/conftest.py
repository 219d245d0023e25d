"""Shared inputs for pipeline tests: a small simulated stream and reference profiles built from it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from drifthouse.config import Config
from drifthouse.detectors.reference import Profile, build_profile
from drifthouse.simulate import Record, Scenario, simulate


@dataclass(frozen=True)
class Stream:
    scenario: Scenario
    records: list[Record]
    profiles: dict[str, Profile]


def profiles_from(records: list[Record], settings: Config) -> dict[str, Profile]:
    """Reference profiles of every model in ``records`` (prediction events)."""
    by_model: dict[str, list[dict]] = {}
    for r in records:
        event = json.loads(r.value)
        by_model.setdefault(event["model"], []).append(event)
    out = {}
    for model, events in by_model.items():
        # PII features are never profiled (as `drifthouse profile -c CONFIG` does).
        pii = set(settings.model(model).pii)
        names = [n for n in events[0]["features"] if n not in pii]
        out[model] = build_profile(
            model=model,
            model_version=events[0]["model_version"],
            created_at="2026-01-01T00:00:00Z",
            source_digest="test",
            settings=settings.metrics,
            features={n: [e["features"].get(n) for e in events] for n in names},
            prediction=[e["prediction"] for e in events],
            latency_ms=[e["latency_ms"] for e in events],
            status=[e["status"] for e in events],
        )
    return out


@pytest.fixture(scope="session")
def small_stream() -> Stream:
    """Two simulated models over 12 hours at 6 events a minute each; faults after hour 6."""
    sc = Scenario.demo(days=0.5, rate_per_min=6, reference_hours=6)
    records = [r for r in simulate(sc, seed=3) if r.topic == "predictions"]
    reference = [r for r in records if r.ts_ms < sc.reference_end_ms]
    return Stream(sc, records, profiles_from(reference, Config()))
