"""How long `drifthouse demo` takes, as the README's first command runs it.

    .venv/bin/python bench/bench_demo.py [--repeat R] [--days D]

Runs ``drifthouse demo`` (three simulated days by default, the embedded store in a fresh
folder) in a process of its own: first with an empty Numba cache (``NUMBA_CACHE_DIR``), as on
a fresh machine, where every kernel compiles, then ``R`` times with that cache filled. Prints
each run's wall time, CPU time and peak resident memory, with the machine's load average. The
goal: within two minutes here, the first run included.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 120.0


def run_once(days: float, folder: Path, cache: Path) -> tuple[float, float, float, str]:
    """One demo in ``folder``: (wall seconds, CPU seconds, peak RSS in MB, its last line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "drifthouse", "demo", "--days", str(days)],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120", "NUMBA_CACHE_DIR": str(cache)},
        check=False,
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"drifthouse demo exited {done.returncode}:\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of the children is the largest of any child so far (KB on Linux).
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return wall, cpu, after.ru_maxrss / 1024, lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs after the first")
    parser.add_argument("--days", type=float, default=3.0, help="simulated days (the default's)")
    args = parser.parse_args()
    walls = []
    print(f"drifthouse demo --days {args.days}\n")
    print("| run | wall s | CPU s | peak RSS MB | load (1 min) |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-demo-cache-") as cache:
        for i in range(args.repeat + 1):
            with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
                wall, cpu, rss, _ = run_once(args.days, Path(tmp), Path(cache))
            walls.append(wall)
            name = "first (kernels compile)" if i == 0 else f"{i + 1} (cached kernels)"
            load = os.getloadavg()[0]
            print(f"| {name} | {wall:.1f} | {cpu:.1f} | {rss:,.0f} | {load:.1f} |", flush=True)
    worst = max(walls)
    verdict = "met" if worst <= GOAL_S else "missed"
    print(f"\nslowest {worst:.1f} s against the goal of {GOAL_S:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
