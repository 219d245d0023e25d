"""The added cost per event of direct loss estimation (DLE) for a regression model.

NannyML's car price dataset (tests/detectors/data/nannyml_dle.npz: five numeric features, two
categorical, a numeric prediction) goes through column extraction's output and the model
sketch's ``update`` in micro-batches of 1,024 events, best of ``--repeat``, with the profile's
loss model on and off (``msgspec.structs.replace(profile, loss_model=None)``) in the same run:
the added cost is the difference. Next to it, in the same run, the DLE sketch's ``update``
alone (slots in NumPy, then the Numba kernel) and the kernel alone on the precomputed slots.

Usage::

    .venv/bin/python bench/bench_dle.py [--events N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np

from drifthouse.config import MetricsConfig
from drifthouse.detectors._dle_kernels import dle_update
from drifthouse.detectors.columns import Columns, extract
from drifthouse.detectors.dle import CAP, batch_of_columns
from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch
from drifthouse.events import PredictionEvent

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the fixture's helpers
from tests.detectors.test_dle_nannyml import ARRAYS, FIXTURE, _columns, _profile

BATCH = 1_024


def _best(fn: Callable[[], None], repeat: int) -> float:
    fn()  # compile and warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _dle_alone(sk: ModelSketch, batches: list[Columns], repeat: int, n: int) -> dict[str, float]:
    """The DLE sketch's ``update`` alone, and its kernel alone on precomputed slots."""
    dle = sk.dle
    assert dle is not None
    dbatches = [batch_of_columns(b) for b in batches]
    slots = [dle.slots(b) for b in dbatches]
    m = dle.model

    def alone() -> None:
        st = dle.empty()
        for b in dbatches:
            dle.update(st, b)

    def kernel() -> None:
        sums = np.zeros(3, np.int64)
        for s, ok in slots:
            dle_update(s, ok, dle.offsets, dle.table_abs, dle.table_sq, m.intercept_abs,
                       m.intercept_sq, 1 / m.unit_abs, 1 / m.unit_sq, CAP, sums)  # fmt: skip

    return {
        "dle update alone µs/event": _best(alone, repeat) / n * 1e6,
        "dle kernel alone µs/event": _best(kernel, repeat) / n * 1e6,
        "terms": float(len(m.sizes)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    profile = _profile()
    n0 = FIXTURE["reference_events"]
    cols = _columns(n0, n0 + args.events)
    events = [
        PredictionEvent(
            model="m",
            ts_ms=i,
            features={
                k: (float(v[i]) if k in FIXTURE["numeric"] else v[i]) for k, v in cols.items()
            },
            prediction=float(ARRAYS["y_pred"][n0 + i]),
        )
        for i in range(args.events)
    ]
    out: dict[str, float] = {}
    for name, prof in (
        ("dle-on", profile),
        ("dle-off", msgspec.structs.replace(profile, loss_model=None)),
    ):
        sk = ModelSketch("m", prof, MetricsConfig())
        batches = [extract(events[i : i + BATCH], sk.layout) for i in range(0, len(events), BATCH)]

        def run(sk: ModelSketch = sk, batches: list[Columns] = batches) -> None:
            st = sk.empty()
            for b in batches:
                sk.update(st, ModelBatch(b))

        out[f"{name} update µs/event"] = _best(run, args.repeat) / args.events * 1e6
        if name == "dle-on":
            out |= _dle_alone(sk, batches, args.repeat, args.events)
    out["dle added µs/event"] = out["dle-on update µs/event"] - out["dle-off update µs/event"]
    print(json.dumps({k: round(v, 3) for k, v in out.items()}, indent=1))


if __name__ == "__main__":
    main()
