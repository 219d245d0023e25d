"""Change detection on window series: false alarms, detection delays, raw river for comparison.

    .venv/bin/python bench/bench_change.py [--runs R] [--windows W] [--change-runs N] \
        [--before B] [--after A] [--seed S]

Feeds synthetic per-window values to ``ChangeDetectors(ChangeConfig(series=("s",)))`` (the
defaults: ADWIN and Page-Hinkley over values standardised with the first 30 windows), one
``update`` per window, a fresh set of detectors per run, and prints three markdown tables:

- false alarms on stationary series: ``--runs`` runs (10) of ``--windows`` windows (10,000) of
  normal(0.5, 0.1), Bernoulli(0.3) (one 0/1 value per window) and binomial(1000, 0.05) / 1000
  (a 5xx rate); an alarm is a ``change_detected`` of 1.0, and the windows fed are those after
  each warm-up (a warm-up begins again after every alarm);
- detection delays: ``--change-runs`` runs (50) of ``--before`` stationary windows (200)
  followed by ``--after`` changed ones (300): normal mean 0.5 -> 0.6 (+1 standard deviation),
  5xx rate 0.05 -> 0.07 (binomial, n = 1000), Bernoulli 0.3 -> 0.5. The delay is the index of
  the first alarm at or after the change minus ``--before`` (0 = the first changed window); the
  median and 90th percentile are numpy's (linear interpolation), rounded to whole windows.
  Runs with an alarm before the change are counted below the table;
- river's ``drift.ADWIN()`` and ``drift.PageHinkley()`` with their own defaults (ADWIN
  ``clock 32``, Page-Hinkley ``threshold 50``) on the raw values of the same 5xx-rate runs:
  how many runs had an alarm anywhere in their ``--before`` + ``--after`` windows.

Run ``i`` (0-based) of every table draws from ``numpy.random.default_rng(seed + i)``, the values
before a change first, then those after it. With the defaults this reproduces the figures of
docs/model-performance.md ("Change detection"). Takes a few seconds on one core.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from river import drift

from drifthouse.detectors.base import Result
from drifthouse.detectors.change import ChangeConfig, ChangeDetectors

HOUR_MS = 3_600_000
Draw = Callable[[np.random.Generator, int], np.ndarray]

# river's constructors are not annotated; call them through explicitly untyped names.
_ADWIN: Callable[..., Any] = drift.ADWIN
_PAGE_HINKLEY: Callable[..., Any] = drift.PageHinkley


def _normal(mean: float) -> Draw:
    return lambda rng, n: rng.normal(mean, 0.1, n)


def _bernoulli(p: float) -> Draw:
    return lambda rng, n: (rng.random(n) < p) * 1.0


def _rate(p: float) -> Draw:
    return lambda rng, n: rng.binomial(1000, p, n) / 1000


STATIONARY: list[tuple[str, Draw]] = [
    ("normal(0.5, 0.1)", _normal(0.5)),
    ("Bernoulli(0.3), one 0/1 value per window", _bernoulli(0.3)),
    ("5xx rate: binomial(1000, 0.05) / 1000", _rate(0.05)),
]

CHANGES: list[tuple[str, Draw, Draw]] = [
    ("normal mean +1 standard deviation", _normal(0.5), _normal(0.6)),
    ("5xx rate 0.05 -> 0.07 (binomial, n = 1000)", _rate(0.05), _rate(0.07)),
    ("Bernoulli 0.3 -> 0.5", _bernoulli(0.3), _bernoulli(0.5)),
]


def feed(values: np.ndarray) -> list[bool | None]:
    """Feed one series to fresh default detectors, one ``update`` per window (hourly starts);
    per window, ``None`` during a warm-up, else whether a change was detected."""
    cd = ChangeDetectors(ChangeConfig(series=("s",)))
    out: list[bool | None] = []
    for i, v in enumerate(values):
        res = cd.update("m", "1", "1h", i * HOUR_MS, [Result("", "s", float(v), None, 0, 1)])
        out.append(res[0].value == 1.0 if res else None)
    return out


def false_alarms(runs: int, windows: int, seed: int) -> None:
    print(f"\nFalse alarms of the defaults, {runs} runs of {windows:,} windows (seeds {seed}..)\n")
    print("| stationary series | alarms / windows fed | false alarms per window |\n|---|---|---|")
    total_alarms = total_fed = 0
    for name, draw in STATIONARY:
        n_alarms = n_fed = 0
        for i in range(runs):
            out = [r for r in feed(draw(np.random.default_rng(seed + i), windows)) if r is not None]
            n_alarms, n_fed = n_alarms + sum(out), n_fed + len(out)
        total_alarms, total_fed = total_alarms + n_alarms, total_fed + n_fed
        share = 100 * n_alarms / n_fed if n_fed else float("nan")
        print(f"| {name} | {n_alarms} / {n_fed:,} | {share:.3f}% |")
    if total_alarms:
        print(f"\nAll series: one false alarm per {total_fed / total_alarms:,.0f} windows fed.")


def delays(runs: int, before: int, after: int, seed: int) -> None:
    print(
        f"\nDetection delays, {runs} runs of {before} stationary + {after} changed windows"
        f" (seeds {seed}..)\n"
    )
    print("| change | detected | median delay | 90th percentile |\n|---|---|---|---|")
    early: list[str] = []  # runs with an alarm before the change, per change
    for name, draw_before, draw_after in CHANGES:
        found: list[int] = []
        n_early = 0
        for i in range(runs):
            rng = np.random.default_rng(seed + i)
            x = np.r_[draw_before(rng, before), draw_after(rng, after)]
            fired = [j for j, a in enumerate(feed(x)) if a]
            n_early += any(j < before for j in fired)
            later = [j - before for j in fired if j >= before]
            if later:
                found.append(later[0])
        if found:
            median = round(float(np.median(found)))
            p90 = round(float(np.percentile(found, 90)))
            print(f"| {name} | {len(found)}/{runs} | {median} windows | {p90} |")
        else:
            print(f"| {name} | 0/{runs} | - | - |")
        early.append(str(n_early))
    print(f"\nRuns with an alarm before the change, in the table's order: {', '.join(early)}.")


def raw_river(runs: int, before: int, after: int, seed: int) -> None:
    _, draw_before, draw_after = CHANGES[1]
    print(
        f"\nriver's detectors with their own defaults on raw 5xx rates 0.05 -> 0.07, {runs} runs"
        f" of {before} + {after} windows (seeds {seed}..)\n"
    )
    print("| detector on raw values | runs with an alarm |\n|---|---|")
    n_adwin = n_ph = n_either = 0
    for i in range(runs):
        rng = np.random.default_rng(seed + i)
        x = np.r_[draw_before(rng, before), draw_after(rng, after)]
        adwin, ph = _ADWIN(), _PAGE_HINKLEY()
        hit_adwin = hit_ph = False
        for v in x:
            adwin.update(float(v))
            ph.update(float(v))
            hit_adwin = hit_adwin or bool(adwin.drift_detected)
            hit_ph = hit_ph or bool(ph.drift_detected)
        n_adwin += hit_adwin
        n_ph += hit_ph
        n_either += hit_adwin or hit_ph
    print(f"| ADWIN (clock {_ADWIN().clock}) | {n_adwin}/{runs} |")
    print(f"| Page-Hinkley (threshold {_PAGE_HINKLEY().threshold:g}) | {n_ph}/{runs} |")
    print(f"| either | {n_either}/{runs} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="false-alarm runs")
    parser.add_argument("--windows", type=int, default=10_000, help="windows per false-alarm run")
    parser.add_argument("--change-runs", type=int, default=50, help="runs with a change")
    parser.add_argument("--before", type=int, default=200, help="windows before the change")
    parser.add_argument("--after", type=int, default=300, help="windows after the change")
    parser.add_argument("--seed", type=int, default=0, help="run i uses default_rng(seed + i)")
    args = parser.parse_args()
    t = time.perf_counter()
    false_alarms(args.runs, args.windows, args.seed)
    delays(args.change_runs, args.before, args.after, args.seed)
    raw_river(args.change_runs, args.before, args.after, args.seed)
    print(f"\n({time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
