"""Synthetic prediction streams with injected faults, for the demo, ``drifthouse produce``, tests
and benchmarks.

A :class:`Scenario` describes models serving for some simulated days: a clean reference period,
then faults (gradual and sudden drift, a new category, rising missing values, a latency
regression, a 5xx spike, an accuracy drop). :func:`simulate` turns it into prediction and label
events in event-time order. Everything is drawn from one seeded generator, so the same scenario
and seed always give the same bytes.

Example
-------
>>> sc = Scenario.demo(days=1.5, rate_per_min=2)
>>> events = list(simulate(sc, seed=7))
>>> events[0].topic, events[0].value[:10]
('predictions', b'{"model":"')
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

__all__ = ["Fault", "Record", "Scenario", "simulate"]

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_ENCODE = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Fault:
    """One injected fault: what goes wrong, for which model and feature, from when.

    ``expect`` names the metric that should catch it (and ``rule`` the shipped rule that fires).
    """

    name: str
    model: str
    kind: str
    start_ms: int
    feature: str = ""
    end_ms: int | None = None
    expect: str = ""
    description: str = ""

    def active(self, ts: np.ndarray) -> np.ndarray:
        on: np.ndarray = ts >= self.start_ms
        if self.end_ms is not None:
            on &= ts < self.end_ms
        return on

    def ramp(self, ts: np.ndarray, hours: float) -> np.ndarray:
        """0 before the onset, rising linearly to 1 over ``hours``."""
        ramp: np.ndarray = np.clip((ts - self.start_ms) / (hours * HOUR), 0.0, 1.0)
        out: np.ndarray = ramp * self.active(ts)
        return out


@dataclass(frozen=True)
class Record:
    """One message to publish: topic, key (the model), value (JSON bytes) and event time."""

    topic: str
    key: bytes
    value: bytes
    ts_ms: int


@dataclass(frozen=True)
class Scenario:
    """Models serving from ``start_ms`` for ``days``; the first ``reference_hours`` are clean."""

    name: str
    start_ms: int
    days: float
    rate_per_min: int
    reference_hours: float
    faults: tuple[Fault, ...] = field(default_factory=tuple)
    models: tuple[str, ...] = ("fraud", "eta")

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(self.days * DAY)

    @property
    def reference_end_ms(self) -> int:
        return self.start_ms + int(self.reference_hours * HOUR)

    @classmethod
    def demo(
        cls,
        *,
        days: float = 3.0,
        rate_per_min: int = 30,
        start_ms: int = 1_767_225_600_000,
        reference_hours: float = 24.0,
    ) -> Scenario:
        """The demo: a fraud classifier and an ETA regressor; faults start after day one.

        ``start_ms`` defaults to 2026-01-01T00:00Z, a Thursday, so daily and weekly windows
        line up with the story.
        """
        ref = reference_hours
        if days * 24 <= ref:
            raise ValueError(
                f"a scenario of {days} days leaves no time after {ref} reference hours"
            )
        t = start_ms + int(ref * HOUR)
        span = int((days * 24 - ref) * HOUR)

        def at(frac: float) -> int:
            return t + int(frac * span) // HOUR * HOUR

        return cls("demo", start_ms, days, rate_per_min, ref, _demo_faults(at))

    @classmethod
    def quick(cls) -> Scenario:
        """The demo's seven faults in one simulated day: 12 clean hours, then the faults, at 20
        events a minute per model (57,600 predictions): for end-to-end tests and a short look.

        >>> sc = Scenario.quick()
        >>> sc.name, sc.days, sc.reference_hours, len(sc.faults)
        ('quick', 1.0, 12.0, 7)
        """
        demo = cls.demo(days=1.0, rate_per_min=20, reference_hours=12.0)
        return cls("quick", demo.start_ms, demo.days, demo.rate_per_min, 12.0, demo.faults)

    def faults_for(self, model: str, kind: str) -> list[Fault]:
        return [f for f in self.faults if f.model == model and f.kind == kind]


_COUNTRIES = np.array(["DE", "FR", "GB", "US", "NL", "ES", "IT", "PL"])
_COUNTRY_P = np.array([0.25, 0.15, 0.15, 0.2, 0.08, 0.07, 0.06, 0.04])
_DEVICES = np.array(["ios", "android", "web"])
_DEVICE_P = np.array([0.4, 0.4, 0.2])
_MERCHANTS = np.array(["grocery", "travel", "electronics", "fashion", "gaming", "other"])
_MERCHANT_P = np.array([0.3, 0.1, 0.15, 0.2, 0.1, 0.15])
_VEHICLES = np.array(["car", "bike", "scooter"])
_VEHICLE_P = np.array([0.6, 0.25, 0.15])


def _demo_faults(at: Callable[[float], int]) -> tuple[Fault, ...]:
    """The demo's seven faults, each starting on the hour ``at`` a fraction of the time after
    the reference period."""
    return (
        Fault(
            "gradual drift",
            "fraud",
            "gradual_shift",
            at(0.05),
            "amount",
            expect="psi",
            description="transaction amounts creep upwards over 12 hours",
        ),
        Fault(
            "sudden drift",
            "eta",
            "sudden_shift",
            at(0.15),
            "distance_km",
            expect="psi",
            description="trip distances jump by half at once",
        ),
        Fault(
            "new category",
            "fraud",
            "new_category",
            at(0.25),
            "device",
            expect="new_category",
            description="a new device type 'smart_tv' appears",
        ),
        Fault(
            "rising missing values",
            "fraud",
            "missing",
            at(0.35),
            "age",
            expect="missing_rate",
            description="the age field goes missing more and more",
        ),
        Fault(
            "latency regression",
            "eta",
            "latency",
            at(0.45),
            expect="latency_p95",
            description="p95 latency triples after a deploy",
        ),
        Fault(
            "5xx spike",
            "fraud",
            "errors",
            at(0.6),
            end_ms=at(0.6) + 2 * HOUR,
            expect="error_rate_5xx",
            description="a dependency fails: 20% 5xx for two hours",
        ),
        Fault(
            "accuracy drop",
            "fraud",
            "concept",
            at(0.7),
            expect="accuracy",
            description="fraudsters change tactics: the score stops predicting the label",
        ),
    )


def _fraud_minute(rng: np.random.Generator, sc: Scenario, ts: np.ndarray) -> dict[str, Any]:
    n = ts.size
    amount = rng.lognormal(3.5, 0.8, n)
    for f in sc.faults_for("fraud", "gradual_shift"):
        amount *= 1.0 + 1.5 * f.ramp(ts, 12)
    age = rng.normal(38, 11, n).clip(18, 90).round()
    age_missing = rng.random(n) < 0.01
    for f in sc.faults_for("fraud", "missing"):
        age_missing |= rng.random(n) < 0.5 * f.ramp(ts, 8)
    tenure = rng.exponential(400, n).round(1)
    items = (1 + rng.poisson(1.5, n)).astype(np.int64)
    velocity = rng.poisson(2.0, n).astype(np.float64)
    country = rng.choice(_COUNTRIES, n, p=_COUNTRY_P)
    device = rng.choice(_DEVICES, n, p=_DEVICE_P)
    for f in sc.faults_for("fraud", "new_category"):
        device = np.where(f.active(ts) & (rng.random(n) < 0.3), "smart_tv", device)
    merchant = rng.choice(_MERCHANTS, n, p=_MERCHANT_P)
    # The true fraud probability; the model's score tracks it until the concept changes.
    logit = -3.2 + 0.6 * np.log1p(amount / 50) + 0.35 * velocity + 0.8 * (merchant == "gaming")
    p_true = 1 / (1 + np.exp(-logit))
    score = np.clip(p_true + rng.normal(0, 0.05, n), 0.001, 0.999)
    label = rng.random(n) < p_true
    for f in sc.faults_for("fraud", "concept"):
        flip = f.active(ts) & (rng.random(n) < 0.45)
        label = np.where(flip, ~label, label)
    latency = rng.gamma(4.0, 5.0, n)
    status = np.where(rng.random(n) < 0.003, 500, np.where(rng.random(n) < 0.01, 400, 200))
    for f in sc.faults_for("fraud", "errors"):
        status = np.where(f.active(ts) & (rng.random(n) < 0.2), 503, status)
    return {
        "features": {
            "amount": amount.round(2),
            "age": np.where(age_missing, np.nan, age),
            "tenure_days": tenure,
            "n_items": items,
            "velocity_1h": velocity,
            "country": country,
            "device": device,
            "merchant_category": merchant,
        },
        "prediction": score.round(4),
        "label": label.astype(np.int64),
        "latency_ms": latency.round(2),
        "status": status,
        "segment": {"country": country},
    }


def _eta_minute(rng: np.random.Generator, sc: Scenario, ts: np.ndarray) -> dict[str, Any]:
    n = ts.size
    distance = rng.gamma(2.0, 2.5, n)
    for f in sc.faults_for("eta", "sudden_shift"):
        distance = np.where(f.active(ts), distance * 1.5, distance)
    traffic = rng.beta(2, 5, n)
    stops = rng.poisson(1.0, n).astype(np.float64)
    vehicle = rng.choice(_VEHICLES, n, p=_VEHICLE_P)
    speed = np.select([vehicle == "car", vehicle == "bike"], [30.0, 15.0], 20.0)
    true_min = 60 * distance / (speed * (1 - 0.5 * traffic)) + 2 * stops + rng.normal(0, 2, n)
    predicted = 60 * distance / (speed * (1 - 0.5 * traffic)) + 2 * stops
    latency = rng.gamma(3.0, 4.0, n)
    for f in sc.faults_for("eta", "latency"):
        latency = np.where(f.active(ts), latency * 3.0, latency)
    status = np.where(rng.random(n) < 0.002, 500, 200)
    return {
        "features": {
            "distance_km": distance.round(3),
            "traffic_index": traffic.round(3),
            "stops": stops,
            "vehicle": vehicle,
        },
        "prediction": predicted.round(2),
        "label": np.maximum(true_min, 1.0).round(2),
        "latency_ms": latency.round(2),
        "status": status,
        "segment": {"vehicle": vehicle},
    }


_MODELS = {"fraud": (_fraud_minute, "2.3.0"), "eta": (_eta_minute, "1.4.1")}


def _iso(ts_ms: int) -> str:
    seconds, ms = divmod(ts_ms, 1000)
    return np.datetime_as_string(np.datetime64(seconds, "s"), unit="s") + f".{ms:03d}Z"


def simulate(
    scenario: Scenario,
    *,
    seed: int = 0,
    until_ms: int | None = None,
    labels: bool = True,
    label_delay_min: tuple[int, int] = (5, 120),
) -> Iterator[Record]:
    """Prediction events (topic ``predictions``) and delayed labels (topic ``labels``), in event-time order.

    Labels carry the time they arrive (prediction time plus a delay), so they interleave with
    later predictions the way a real label pipeline would.
    """
    rng = np.random.default_rng(seed)
    end = scenario.end_ms if until_ms is None else min(until_ms, scenario.end_ms)
    # (arrival, sequence, key, value) of labels, a heap: ties leave in the order they came.
    pending: list[tuple[int, int, bytes, bytes]] = []
    counter = 0
    for minute in range(scenario.start_ms, end, MINUTE):
        batch: list[tuple[int, bytes, bytes]] = []
        for model in scenario.models:
            make, version = _MODELS[model]
            n = int(rng.poisson(scenario.rate_per_min))
            if n == 0:
                continue
            ts = np.sort(minute + rng.integers(0, MINUTE, n))
            cols = make(rng, scenario, ts)
            delays = rng.integers(label_delay_min[0] * MINUTE, label_delay_min[1] * MINUTE + 1, n)
            feats = cols["features"]
            names = list(feats)
            columns = [feats[k].tolist() for k in names]
            seg_name, seg_values = next(iter(cols["segment"].items()))
            for i in range(n):
                counter += 1
                event_id = f"{model}-{seed}-{counter}"
                features = {}
                for name, col in zip(names, columns, strict=True):
                    v = col[i]
                    features[name] = None if isinstance(v, float) and v != v else v
                event = {
                    "model": model,
                    "model_version": version,
                    "ts": _iso(int(ts[i])),
                    "event_id": event_id,
                    "features": features,
                    "prediction": cols["prediction"][i].item(),
                    "latency_ms": cols["latency_ms"][i].item(),
                    "status": int(cols["status"][i]),
                    "segment": {seg_name: str(seg_values[i])},
                }
                key = model.encode()
                batch.append((int(ts[i]), key, _ENCODE(event)))
                if labels and int(cols["status"][i]) < 400:
                    arrival = int(ts[i] + delays[i])
                    label = {
                        "event_id": event_id,
                        "model": model,
                        "ts": arrival,
                        "label": cols["label"][i].item(),
                    }
                    heapq.heappush(pending, (arrival, counter, key, _ENCODE(label)))
        batch.sort(key=lambda r: r[0])
        horizon = minute + MINUTE
        due: list[tuple[int, bytes, bytes]] = []
        while pending and pending[0][0] < horizon:
            t, _, k, v = heapq.heappop(pending)
            due.append((t, k, v))
        merged = [(t, 0, k, v) for t, k, v in batch] + [(t, 1, k, v) for t, k, v in due]
        merged.sort(key=lambda r: (r[0], r[1]))
        for t, kind, k, v in merged:
            yield Record("labels" if kind else "predictions", k, v, t)
    while pending:
        t, _, k, v = heapq.heappop(pending)
        if t < end:
            yield Record("labels", k, v, t)
