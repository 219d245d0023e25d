"""The added cost per event of 25 numeric features and of a 384-dimension embedding.

One model's events go through the worker's per-event path, stage by stage: the fast decoder
(:mod:`drifthouse.detectors.typed_decode`, JSON bytes to an event), column extraction
(:func:`drifthouse.detectors.columns.extract`) and the model sketch's ``update``, in
micro-batches of 1,024 events. Four layouts are measured in the same run, best of ``--repeat``:

- ``none``: no feature (prediction, latency, status only): the cost every event pays anyway;
- ``numeric25``: 25 numeric features;
- ``embedding384``: one 384-dimension embedding (64 random Fourier features);
- ``both``: the two together.

The added cost of a layout is its cost per event minus ``none``'s. When the build's profiles
fit the multivariate part over numeric features (PCA reconstruction error, a ``multivariate``
field of the profile), the numeric layouts are measured with it on, and again with it off
(``numeric25-mv-off``). Next to the embedding's
``update``, its NumPy twin on the same arrays (as ``tests/naive.py``: the unit vectors and
``cos(x @ W + b)`` through BLAS, summed in fixed point), the peer the kernel is held against.

Usage::

    .venv/bin/python bench/bench_embedding.py [--events N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from drifthouse.config import MetricsConfig
from drifthouse.detectors.columns import extract
from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch
from drifthouse.detectors.reference import Profile
from drifthouse.detectors.typed_decode import TypedDecoders
from drifthouse.events import decoder_for
from drifthouse.profiles.columns import build_profile

N_NUM = 25
DIM = 384
N_REF = 20_000
BATCH = 1_024
T0 = 1_767_225_600_000


def _features(rng: np.random.Generator, n: int, numeric: bool, embedding: bool) -> dict[str, Any]:
    cols: dict[str, Any] = {}
    if numeric:
        for i in range(N_NUM):
            cols[f"num_{i}"] = rng.lognormal(0.0, 1.0, n) if i % 2 else rng.normal(0.0, 1.0, n)
    if embedding:
        # Sentence-embedding-like: anisotropic, unit length.
        x = rng.normal(size=(n, DIM)) * np.linspace(0.2, 1.5, DIM) + 0.1
        cols["emb"] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return cols


def _profile(rng: np.random.Generator, numeric: bool, embedding: bool) -> Profile:
    return build_profile(
        model="bench", model_version="1", created_at="2026-01-01T00:00:00Z", source_digest="",
        settings=MetricsConfig(), features=_features(rng, N_REF, numeric, embedding),
        prediction=rng.uniform(size=N_REF),
    )  # fmt: skip


def _messages(rng: np.random.Generator, n: int, numeric: bool, embedding: bool) -> list[bytes]:
    cols = _features(rng, n, numeric, embedding)
    score = rng.uniform(size=n)
    out = []
    for i in range(n):
        feats = {k: (v[i].tolist() if k == "emb" else float(v[i])) for k, v in cols.items()}
        event = {"model": "bench", "ts": T0 + i, "event_id": f"e{i}", "features": feats,
                 "prediction": float(score[i]), "latency_ms": 12.5}  # fmt: skip
        out.append(json.dumps(event).encode())
    return out


def _twin(x: np.ndarray, wt: np.ndarray, b: np.ndarray) -> None:
    """The embedding update in plain NumPy (all rows valid here)."""
    norm = np.sqrt((x * x).sum(axis=1))
    np.rint(x / norm[:, None] * 2.0**32).astype(np.int64).sum(axis=0)
    np.rint(np.cos(x @ wt + b) * 2.0**32).astype(np.int64).sum(axis=0)


def _best(fn: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(
    name: str, numeric: bool, embedding: bool, n_events: int, repeat: int, multivariate: bool = True
) -> dict[str, float]:
    """Seconds per event of decode, extract and update for one layout."""
    rng = np.random.default_rng(0)
    profile = _profile(rng, numeric, embedding)
    if not multivariate and getattr(profile, "multivariate", None) is not None:
        profile = msgspec.structs.replace(profile, multivariate=None)
    sketch = ModelSketch("bench", profile, MetricsConfig())
    # The worker's choice: the model's fast decoder, the general one for a model without
    # features.
    decode = (
        TypedDecoders(lambda model: sketch.layout).decoder("bench")
        or decoder_for("prediction").decode
    )
    raw = _messages(rng, n_events, numeric, embedding)
    batches = [raw[i : i + BATCH] for i in range(0, n_events, BATCH)]
    decoded = [[decode(m) for m in b] for b in batches]
    columns = [extract(events, sketch.layout) for events in decoded]

    def run_decode() -> None:
        for b in batches:
            for m in b:
                decode(m)

    def run_extract() -> None:
        for events in decoded:
            extract(events, sketch.layout)

    def run_update() -> None:
        state = sketch.empty()
        for cols in columns:
            sketch.update(state, ModelBatch(cols))

    run_update()  # compile and warm the kernels
    times = {
        "decode": _best(run_decode, repeat) / n_events,
        "extract": _best(run_extract, repeat) / n_events,
        "update": _best(run_update, repeat) / n_events,
    }
    times["total"] = sum(times.values())
    print(
        f"{name:<14} decode {times['decode'] * 1e6:7.2f} us  extract "
        f"{times['extract'] * 1e6:7.2f} us  update {times['update'] * 1e6:7.2f} us  "
        f"total {times['total'] * 1e6:7.2f} us/event",
        flush=True,
    )
    if embedding and not numeric and sketch.embedding is not None:
        wt, b = sketch.embedding.maps[0]

        def run_twin() -> None:
            for cols in columns:
                _twin(cols.embeddings[0], wt, b)

        twin = _best(run_twin, repeat) / n_events
        print(f"{'':<14} the NumPy twin of the embedding's update: {twin * 1e6:7.2f} us/event")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.events} events, batches of {BATCH}, best of {args.repeat}; "
          f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    layouts = {
        "none": (False, False),
        "numeric25": (True, False),
        "embedding384": (False, True),
        "both": (True, True),
    }
    found = {n: measure(n, *kinds, args.events, args.repeat) for n, kinds in layouts.items()}
    has_mv = getattr(_profile(np.random.default_rng(0), True, False), "multivariate", None)
    print(f"multivariate part: {'on in the numeric layouts' if has_mv else 'not in this build'}")
    if has_mv is not None:
        found["numeric25-mv-off"] = measure(
            "numeric25-mv-off", True, False, args.events, args.repeat, multivariate=False
        )
    base = found["none"]["total"]
    print("\nadded cost per event over `none`:")
    for name in ("numeric25", "numeric25-mv-off", "embedding384", "both"):
        if name not in found:
            continue
        added = found[name]["total"] - base
        print(f"  {name:<14} +{added * 1e6:7.2f} us  ({found[name]['total'] / base:4.1f}x `none`)")


if __name__ == "__main__":
    main()
