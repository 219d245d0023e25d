"""Start-up: how long short commands take, each next to what its libraries alone cost.

    .venv/bin/python bench/bench_startup.py [--runs N] [--quick] [--parts] [--before DIR]

Times, in fresh processes as a user runs them (the ``drifthouse`` entry point of this venv),
with warm caches (one untimed run of each first; Python's bytecode and Numba's kernels on
disk, files in the page cache):

- ``drifthouse --help``, ``drifthouse version`` and ``drifthouse check`` of the example
  configuration (goal: 0.3 s each);
- ``drifthouse replay`` of a one-event JSONL file into an embedded store that exists already
  (goal: 1.0 s), into a new store folder (the tables are created first), and with an empty
  Numba cache (every kernel compiles: what the on-disk cache saves);

next to ceilings measured in the same run: ``python -c pass``, ``import numpy``, ``import
numba``, the libraries a replay cannot do without imported and nothing else (NumPy, Numba with
the numpy support its cached kernels load, the embedded engine and clickhouse-connect,
``scipy.special`` for the p-values, pydantic, structlog, typer and rich), then the same plus
what every replay does before its first event: one small kernel loaded from Numba's disk cache
and run, the engine started on a folder and one query answered. These two floors leave their
heap to the operating system at exit, as ``drifthouse`` does (``gc.freeze`` at exit: the
interpreter's teardown otherwise collects the whole heap several times, 0.2-0.4 s here).
Children run with bytecode written (``PYTHONDONTWRITEBYTECODE`` removed from their
environment): a warm cache holds drifthouse's compiled modules, as an installed package does. The commands run round-robin, ``N`` times each, so a burst
of load elsewhere on the machine falls on all of them alike; the table gives the median and the
fastest wall time, and the median CPU time (user + system). ``--parts`` then runs one replay
in one process stage by stage (NumPy, Numba and its first cached kernel, the engine, SciPy's
special functions, the command line's libraries, drifthouse's modules, the replay itself) and
prints the median time of each. ``--before DIR`` times, in the same round-robin, the one-event
replay of another version of drifthouse whose ``drifthouse/`` package is in ``DIR`` (with this
venv's libraries).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DRIFTHOUSE = str(Path(PYTHON).parent / "drifthouse")

# What a replay needs whatever drifthouse does: importing it is the floor of a replay.
LIBRARIES = (
    "import atexit, gc; atexit.register(gc.freeze); "
    "import numpy, numba, numba.np.arraymath, chdb, clickhouse_connect, scipy.special, "
    "pydantic, structlog, typer, rich.console, msgspec, yaml"
)
# ... then start the embedded engine on a folder, answer one query and run one cached kernel.
FLOOR = (
    LIBRARIES + "; import sys, clickhouse_connect as cc; sys.path.insert(0, sys.argv[1]); "
    "import floor_kernel; floor_kernel.count(numpy.zeros(3), numpy.zeros(1, numpy.int64)); "
    "c = cc.get_client(dsn='chdb://' + sys.argv[1] + '/engine'); c.query('SELECT 1'); c.close()"
)
# A kernel like drifthouse's (arrays in, counts updated in place), cached on disk.
KERNEL = """
from numba import njit


@njit(cache=True, nogil=True)
def count(values, counts):
    for i in range(values.shape[0]):
        if values[i] > 0:
            counts[0] += 1
"""
# One replay in one process, stage by stage: where its time goes. Each line times what it adds
# to what the lines above it loaded already.
PARTS = """
import gc, json, sys, time
gc.set_threshold(50_000, 20, 10)  # as drifthouse.cli.main sets it before a command's imports
t = time.perf_counter
folder, config, events = sys.argv[1:4]
sys.path.insert(0, folder)
parts, last = [], t()
def mark(name):
    global last
    now = t()
    parts.append((name, now - last))
    last = now
import numpy
mark("import numpy")
import numba
mark("import numba")
import floor_kernel
floor_kernel.count(numpy.zeros(3), numpy.zeros(1, numpy.int64))
mark("Numba's numpy support, first cached kernel loaded and run")
import chdb, chdb.state, clickhouse_connect
mark("import chdb (with pyarrow) and clickhouse-connect")
client = clickhouse_connect.get_client(dsn="chdb://" + folder + "/data")
client.query("SELECT 1")
client.close()
mark("the embedded engine started, one query")
import scipy.special
mark("import scipy.special")
import pydantic, rich.console, structlog, typer, yaml, msgspec, typer._adapters
mark("import pydantic, typer, rich, structlog, PyYAML, msgspec")
import drifthouse.cli, drifthouse.app.replay
mark("import drifthouse (the command line and the replay's modules)")
code = drifthouse.cli.main(["replay", "-c", config, "--source", "file:" + events])
mark("the replay: config, store, pipeline, its 4 cached kernels, evaluation, rows")
print(json.dumps({"code": code, "parts": parts}))
"""
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-bench",
    "PAGERDUTY_ROUTING_KEY": "bench-routing-key",
    "RETRAIN_WEBHOOK_TOKEN": "bench-token",
}


@dataclass
class Case:
    """One command, timed ``runs`` times."""

    name: str
    argv: list[str]
    goal: float | None = None
    ceiling: bool = False
    env: dict[str, str] = field(default_factory=dict)
    fresh_store: bool = False  # a new store folder for each run
    fresh_numba: bool = False  # an empty Numba cache for each run
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)


def _setup(folder: Path) -> tuple[Path, Path, Path]:
    """The example config, a replay config and a one-event JSONL file in ``folder``."""
    example = folder / "example.yaml"
    shutil.copy(ROOT / "examples" / "drifthouse.yaml", example)
    events = folder / "one.jsonl"
    event = {
        "model": "fraud",
        "model_version": "1.4.2",
        "ts": "2024-05-01T12:00:00.250Z",
        "event_id": "req-1",
        "features": {"amount": 129.5, "country": "DE", "new_customer": True},
        "prediction": 0.83,
        "latency_ms": 12.7,
        "status": 200,
    }
    events.write_text(json.dumps(event) + "\n")
    config = folder / "replay.yaml"
    config.write_text("store: {path: ./data}\nwindows: [{size: 1h}]\n")
    (folder / "floor_kernel.py").write_text(KERNEL)
    return example, config, events


def _cases(folder: Path, quick: bool, before: Path | None = None) -> list[Case]:
    example, config, events = _setup(folder)
    args = ["replay", "-c", str(config), "--source", f"file:{events}"]
    replay = [DRIFTHOUSE, *args]
    cases = [
        Case("python -c pass", [PYTHON, "-c", "pass"], ceiling=True),
        Case("python -c 'import numpy'", [PYTHON, "-c", "import numpy"], ceiling=True),
        Case("python -c 'import numba'", [PYTHON, "-c", "import numba"], ceiling=True),
        Case("the replay's libraries, imported", [PYTHON, "-c", LIBRARIES], ceiling=True),
        Case(
            "... then the engine started, one query, one cached kernel run",
            [PYTHON, "-c", FLOOR, str(folder)],
            ceiling=True,
        ),
        Case("drifthouse --help", [DRIFTHOUSE, "--help"], goal=0.3),
        Case("drifthouse version", [DRIFTHOUSE, "version"], goal=0.3),
        Case(
            "drifthouse check (the example config)",
            [DRIFTHOUSE, "check", "-c", str(example)],
            goal=0.3,
            env=SECRETS,
        ),
        Case("drifthouse replay, one event, existing store", replay, goal=1.0),
        Case("drifthouse replay, one event, new store", replay, fresh_store=True),
    ]
    if before is not None:
        # Another checkout's code, the same libraries, the same store: in turn with this one.
        cases.append(
            Case(
                f"before ({before}): replay, one event, existing store",
                [PYTHON, "-m", "drifthouse", *args],
                env={"PYTHONPATH": str(before.resolve())},
            )
        )
    if not quick:
        cases.append(
            Case("drifthouse replay, one event, empty Numba cache", replay, fresh_numba=True)
        )
    return cases


def _env(extra: dict[str, str]) -> dict[str, str]:
    """A child's environment: bytecode written and read (a warm cache), a fixed width."""
    env = {**os.environ, **extra, "COLUMNS": "120"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(case: Case, folder: Path) -> tuple[float, float]:
    env = _env(case.env)
    if case.fresh_store:
        shutil.rmtree(folder / "data", ignore_errors=True)
    cache = None
    if case.fresh_numba:
        cache = tempfile.mkdtemp(prefix="bench-startup-numba-")
        env["NUMBA_CACHE_DIR"] = cache
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(case.argv, cwd=folder, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"{case.name} exited {done.returncode}:\n{done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def parts(folder: Path, runs: int) -> None:
    """Print where a one-event replay's time goes, stage by stage (medians of ``runs``)."""
    _, config, events = _setup(folder)
    argv = [PYTHON, "-c", PARTS, str(folder), str(config), str(events)]
    seen: dict[str, list[float]] = {}
    for i in range(runs + 1):
        done = subprocess.run(
            argv, cwd=folder, env=_env({}), capture_output=True, text=True, check=False
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise SystemExit(f"the stages' run failed:\n{done.stderr[-2000:]}")
        report = json.loads(lines[-1])
        if i == 0:
            continue  # warm-up: the store's tables, Numba's cache
        for name, seconds in report["parts"]:
            seen.setdefault(name, []).append(seconds)
    print(f"\none replay in one process, stage by stage, median of {runs} runs\n")
    print("| stage | median s |")
    print("|---|---:|")
    for name, values in seen.items():
        print(f"| {name} | {statistics.median(values):.3f} |")
    total = sum(statistics.median(v) for v in seen.values())
    print(f"| total | {total:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command")
    parser.add_argument("--quick", action="store_true", help="3 runs, no empty-cache replay")
    parser.add_argument(
        "--parts", action="store_true", help="also time a replay's stages in one process"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="a folder holding another version's drifthouse/ package (e.g. `git archive main "
        "drifthouse | tar -x -C DIR`): its one-event replay is timed in turn with this one's",
    )
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        folder = Path(tmp)
        cases = _cases(folder, args.quick, args.before)
        for case in cases:  # warm-up: bytecode, Numba's cache, the store's tables, page cache
            if not case.fresh_numba:
                _run(case, folder)
        for _ in range(runs):
            for case in cases:
                wall, cpu = _run(case, folder)
                case.walls.append(wall)
                case.cpus.append(cpu)
    print(
        f"{runs} runs of each, round-robin; load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end\n"
    )
    print("| command | median wall s | fastest s | median CPU s | goal s |")
    print("|---|---:|---:|---:|---:|")
    for case in cases:
        goal = "" if case.goal is None else f"{case.goal:.1f}"
        name = f"*{case.name}*" if case.ceiling else case.name
        print(
            f"| {name} | {statistics.median(case.walls):.3f} | {min(case.walls):.3f} "
            f"| {statistics.median(case.cpus):.3f} | {goal} |"
        )
    print()
    for case in cases:
        if case.goal is not None:
            median = statistics.median(case.walls)
            verdict = "met" if median <= case.goal else f"missed by {median - case.goal:.2f} s"
            print(f"{case.name}: median {median:.3f} s against {case.goal:.1f} s: {verdict}")
    if args.parts:
        with tempfile.TemporaryDirectory(prefix="bench-startup-parts-") as tmp:
            parts(Path(tmp), runs)


if __name__ == "__main__":
    main()
