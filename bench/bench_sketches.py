"""Sketch update throughput and state size.

Feeds 1,000,000 events x (20 numeric + 5 categorical) features through ``NumericBlock`` and
``CategoricalBlock`` in micro-batches of 256, 1,024 and 4,096 rows, through the public
``update`` (validation included), on one thread, next to a plain NumPy pass over the same
arrays (the memory floor). Then prints the size of one window's state against features and bins.

Usage::

    .venv/bin/python bench/bench_sketches.py [--quick] [--events N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from drifthouse.config import MetricsConfig
from drifthouse.detectors import CategoricalBlock, NumericBlock, QuantileSketch
from drifthouse.detectors.numeric import NumericBatch
from drifthouse.detectors.reference import Profile
from drifthouse.profiles.columns import build_profile

N_NUM = 20
N_CAT = 5
N_REF = 100_000


def _columns(rng: np.random.Generator, n: int, shift: float) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for i in range(N_NUM):
        kind = i % 4
        if kind == 0:
            cols[f"num_{i}"] = rng.normal(shift, 1.0, n)
        elif kind == 1:
            cols[f"num_{i}"] = rng.lognormal(shift, 1.0, n)
        elif kind == 2:
            cols[f"num_{i}"] = rng.exponential(1.0 + shift, n)
        else:
            cols[f"num_{i}"] = rng.integers(0, 20, n).astype(np.float64)
    for i in range(N_CAT):
        k = 10 * (i + 1)
        p = 1.0 / np.arange(1, k + 1)
        cols[f"cat_{i}"] = rng.choice([f"v{j}" for j in range(k)], n, p=p / p.sum())
    return cols


def _profile(rng: np.random.Generator, settings: MetricsConfig) -> Profile:
    cols = _columns(rng, N_REF, 0.0)
    feats: dict[str, np.ndarray | list[str]] = {
        k: (list(v) if k.startswith("cat_") else v) for k, v in cols.items()
    }
    return build_profile(
        model="bench",
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
        source_digest="",
        settings=settings,
        features=feats,
    )


def _best(fn: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def throughput(n_events: int, repeat: int) -> None:
    rng = np.random.default_rng(0)
    profile = _profile(rng, MetricsConfig())
    num = NumericBlock.from_profile(profile)
    cat = CategoricalBlock.from_profile(profile)
    cols = _columns(rng, n_events, 0.1)
    values = np.ascontiguousarray(np.column_stack([cols[n] for n in num.names]))
    status = np.where(rng.random(values.shape) < 0.01, 1, 0).astype(np.uint8)
    codes = np.ascontiguousarray(
        np.column_stack([cat.codes_for(j, cols[n]) for j, n in enumerate(cat.names)])
    )
    n_values = n_events * (N_NUM + N_CAT)

    # Warm up (compile or load the cached kernels).
    num.update(num.empty(), NumericBatch(values[:8], status[:8]))
    cat.update(cat.empty(), codes[:8])

    def floor() -> None:
        values.sum()
        codes.sum()

    t_floor = _best(floor, repeat)
    print(
        f"events: {n_events:,} x ({N_NUM} numeric + {N_CAT} categorical) = {n_values:,} feature-values"
    )
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine)\n"
    )
    print(
        "| micro-batch | numeric ms | categorical ms | total ms | M feature-values/s/core | x NumPy floor |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| NumPy sum (floor) | | | {t_floor * 1e3:.1f} | {n_values / t_floor / 1e6:.0f} | 1.0 |")
    for batch in (256, 1_024, 4_096):

        def run_num(batch: int = batch) -> None:
            s = num.empty()
            for i in range(0, n_events, batch):
                num.update(s, NumericBatch(values[i : i + batch], status[i : i + batch]))

        def run_cat(batch: int = batch) -> None:
            s = cat.empty()
            for i in range(0, n_events, batch):
                cat.update(s, codes[i : i + batch])

        t_num = _best(run_num, repeat)
        t_cat = _best(run_cat, repeat)
        total = t_num + t_cat
        print(
            f"| {batch:,} | {t_num * 1e3:.1f} | {t_cat * 1e3:.1f} | {total * 1e3:.1f} | "
            f"{n_values / total / 1e6:.0f} | {total / t_floor:.1f} |"
        )


def memory() -> None:
    rng = np.random.default_rng(1)
    print("\n| sketch | features | bins per feature | state bytes | serialised bytes |")
    print("|---|---:|---:|---:|---:|")
    for ks_bins in (100, 1_000):
        settings = MetricsConfig(ks_bins=ks_bins)
        for n_f in (1, 20, 100):
            p = build_profile(
                model="m",
                model_version="1",
                created_at="2026-01-01T00:00:00Z",
                source_digest="",
                settings=settings,
                features={f"x{i}": rng.normal(size=20_000) for i in range(n_f)},
            )
            block = NumericBlock.from_profile(p)
            s = block.empty()
            print(
                f"| NumericBlock | {n_f} | {ks_bins} | {block.nbytes(s):,} | {len(s.to_bytes()):,} |"
            )
    for top in (100, 1_000):
        p = build_profile(
            model="m",
            model_version="1",
            created_at="2026-01-01T00:00:00Z",
            source_digest="",
            settings=MetricsConfig(top_categories=top),
            features={f"c{i}": [f"v{j}" for j in range(top + 5)] * 2 for i in range(5)},
        )
        block_c = CategoricalBlock.from_profile(p)
        sc = block_c.empty()
        print(
            f"| CategoricalBlock | 5 | {top} + other | {block_c.nbytes(sc):,} | {len(sc.to_bytes()):,} |"
        )
    q = QuantileSketch()
    sq = q.empty()
    nbytes = sum(a.nbytes for a in sq.arrays().values())
    print(
        f"| QuantileSketch (latency) | 1 | {q.n_buckets + 2} | {nbytes:,} | {len(sq.to_bytes()):,} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200,000 events, one repetition")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    n_events = args.events or (200_000 if args.quick else 1_000_000)
    repeat = args.repeat or (1 if args.quick else 3)
    throughput(n_events, repeat)
    memory()


if __name__ == "__main__":
    main()
