"""Start-up: which heavy libraries a command imports (timings are in bench/bench_startup.py).

Each command runs in a fresh process, as a user runs it, and reports ``sys.modules`` when it
is done. ``--help``, ``version`` and ``check`` need none of the numeric, store or Kafka
libraries; a replay of a file imports what it uses (Numba, the embedded store, the part of
SciPy its p-values need) and nothing of Kafka, of river's change detectors before a series has
warmed up, of pandas, of ``scipy.stats``, or of the alert receivers' clients unless it notifies. The replay's Numba kernels load from the on-disk
cache: a second process compiles none of them.
"""

from __future__ import annotations

import ast
import gc
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Imported only where they are used, never by the command line's start-up.
HEAVY = (
    "aiokafka",
    "chdb",
    "clickhouse_connect",
    "faust",
    "kafka",
    "numba",
    "pandas",
    "pyarrow",
    "river",
    "scipy",
)

# Run `drifthouse ARGV...` in this process, then write the top-level packages imported and
# each Numba dispatcher's cache misses (signatures compiled rather than loaded) as JSON.
_PROBE = textwrap.dedent(
    """
    import gc, json, sys
    from drifthouse.cli import main

    out, argv = sys.argv[1], sys.argv[2:]
    code = main(argv)
    compiled = {}
    if "numba" in sys.modules:
        from numba.core.dispatcher import Dispatcher

        for obj in gc.get_objects():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__.startswith("drifthouse"):
                name = obj.py_func.__qualname__
                compiled[name] = compiled.get(name, 0) + sum(obj.stats.cache_misses.values())
    loaded = sorted({name.partition(".")[0] for name in sys.modules})
    with open(out, "w") as f:
        json.dump({"code": code, "modules": loaded, "all": sorted(sys.modules),
                   "compiled": compiled}, f)
    """
)


def _run(tmp_path: Path, *argv: str) -> dict[str, object]:
    out = tmp_path / "probe.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert out.exists(), done.stderr
    report: dict[str, object] = json.loads(out.read_text())
    return report


def _heavy(report: dict[str, object]) -> list[str]:
    modules = report["modules"]
    assert isinstance(modules, list)
    return [name for name in HEAVY if name in modules]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--help"], id="help"),
        pytest.param(["version"], id="version"),
        pytest.param(["replay", "--help"], id="replay-help"),
    ],
)
def test_help_and_version_import_no_heavy_library(tmp_path: Path, argv: list[str]) -> None:
    report = _run(tmp_path, *argv)
    assert report["code"] == 0
    assert _heavy(report) == []
    assert "numpy" not in report["modules"]  # type: ignore[operator]


def test_check_imports_no_heavy_library(tmp_path: Path) -> None:
    config = tmp_path / "drifthouse.yaml"
    # The example config, with the receivers' secrets it reads from the environment.
    config.write_text((ROOT / "examples" / "drifthouse.yaml").read_text())
    env = {
        "SLACK_BOT_TOKEN": "xoxb-startup-test",
        "PAGERDUTY_ROUTING_KEY": "startup-test-routing-key",
        "RETRAIN_WEBHOOK_TOKEN": "startup-test-token",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        report = _run(tmp_path, "check", "-c", str(config))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert report["code"] == 0
    assert _heavy(report) == []


def test_replay_of_one_event_imports_what_it_uses_and_loads_cached_kernels(
    tmp_path: Path,
) -> None:
    events = tmp_path / "one.jsonl"
    events.write_text(
        json.dumps(
            {
                "model": "fraud",
                "ts": "2024-05-01T12:00:00.250Z",
                "features": {"amount": 129.5, "country": "DE"},
                "prediction": 0.8,
                "latency_ms": 12.7,
            }
        )
        + "\n"
    )
    config = tmp_path / "drifthouse.yaml"
    config.write_text("store: {path: ./data}\nwindows: [{size: 1h}]\n")
    argv = ["replay", "-c", str(config), "--source", f"file:{events}"]
    first = _run(tmp_path, *argv)  # may compile kernels the on-disk cache does not hold yet
    assert first["code"] == 0
    second = _run(tmp_path, *argv, "--run-id", "second")
    assert second["code"] == 0
    modules = second["all"]
    assert isinstance(modules, list)
    assert [n for n in ("aiokafka", "faust", "kafka", "pandas", "river") if n in modules] == []
    assert "scipy.stats" not in modules
    # Without --notify nothing is sent: the receivers' clients (Slack's SDK, httpx) stay out.
    assert [n for n in ("slack_sdk", "httpx", "drifthouse.alerts.receivers") if n in modules] == []
    compiled = second["compiled"]
    assert isinstance(compiled, dict)
    assert compiled, "the replay ran no Numba kernel"
    assert {name: n for name, n in compiled.items() if n} == {}


# Record, from the last exit handler to run (the first registered), how many objects the
# collector had frozen when the interpreter started tearing its modules down.
_EXIT_PROBE = textwrap.dedent(
    """
    import atexit, gc, json, sys

    out, argv = sys.argv[1], sys.argv[2:]

    def record():
        with open(out, "w") as f:
            json.dump({"frozen": gc.get_freeze_count()}, f)

    atexit.register(record)
    from drifthouse.cli import main

    sys.exit(main(argv))
    """
)


def test_a_command_leaves_its_heap_to_the_os_at_exit(tmp_path: Path) -> None:
    # At exit CPython collects the whole heap several times while tearing the modules down:
    # 0.2-0.4 s after a replay (some 160,000 objects of Numba, SciPy and the engine), more than
    # any stage of the replay itself. Frozen objects are left out of those walks; files and
    # clients are closed by the command and by their own exit handlers, as before.
    out = tmp_path / "exit.json"
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_PROBE, str(out), "version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    frozen = json.loads(out.read_text())["frozen"]
    assert frozen > 10_000, f"the heap was not frozen at exit ({frozen} objects)"


# Run `drifthouse ARGV...` in this process and write, for each collection the cyclic collector
# made while the command ran, how many objects were frozen (left out of its walk) at the time;
# then the collector's settings the command left behind.
_GC_PROBE = textwrap.dedent(
    """
    import gc, json, sys
    from drifthouse.cli import main

    out, argv = sys.argv[1], sys.argv[2:]
    frozen = []

    def seen(phase, info):
        if phase == "start":
            frozen.append(gc.get_freeze_count())

    before = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    gc.callbacks.append(seen)
    code = main(argv)
    gc.callbacks.remove(seen)
    after = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    with open(out, "w") as f:
        json.dump({"code": code, "frozen": frozen, "before": before, "after": after}, f)
    """
)


def test_a_replay_never_walks_its_start_up_heap_with_the_collector(tmp_path: Path) -> None:
    # Importing and loading Numba, SciPy and the engine leaves some 200,000 objects that live
    # as long as the process; a young-generation collection over them costs 20-30 ms (four of
    # them in a one-event replay). The collector waits until the first batch has gone through
    # (Numba's kernels loaded), then the start-up heap is frozen and collections see only what
    # came after it.
    events = tmp_path / "one.jsonl"
    events.write_text(
        json.dumps(
            {"model": "fraud", "ts": "2024-05-01T12:00:00Z", "features": {"x": 1.0},
             "prediction": 0.5}
        )
        + "\n"
    )  # fmt: skip
    config = tmp_path / "drifthouse.yaml"
    config.write_text("store: {path: ./data}\nwindows: [{size: 1h}]\n")
    out = tmp_path / "gc.json"
    argv = ["replay", "-c", str(config), "--source", f"file:{events}"]
    for _ in range(2):  # the first run may compile kernels and create the tables
        done = subprocess.run(
            [sys.executable, "-c", _GC_PROBE, str(out), *argv],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
            check=False,
        )
        assert out.exists(), done.stderr
    report = json.loads(out.read_text())
    assert report["code"] == 0
    walked = [n for n in report["frozen"] if n < 100_000]
    assert walked == [], f"{len(walked)} collections walked the start-up heap"
    assert report["after"] == report["before"]  # enabled, same thresholds, nothing left frozen


def test_the_command_line_leaves_the_collectors_thresholds_as_it_found_them() -> None:
    from drifthouse.cli import main

    before = gc.get_threshold()
    assert main(["version"]) == 0
    assert gc.get_threshold() == before


def _kernels() -> list[tuple[str, Any]]:
    from numba.core.dispatcher import Dispatcher

    from drifthouse.detectors import _kernels, _label_kernels

    found = [
        (f"{module.__name__}.{name}", value)
        for module in (_kernels, _label_kernels)
        for name, value in vars(module).items()
        if isinstance(value, Dispatcher)
    ]
    return [*found, ("numeric_update_kernel(3)", _kernels.numeric_update_kernel(3))]


def test_every_cached_kernel_reads_only_constants_of_its_own_file() -> None:
    # Numba's disk cache checks the kernel's own source file for changes, and bakes the values
    # of the globals a kernel reads into the machine code: a constant imported from another
    # module could change without the cached code noticing.
    kernels = _kernels()
    assert len(kernels) >= 5
    for name, kernel in kernels:
        assert kernel.stats.cache_path, f"{name} is not cached on disk (cache=True)"
        func = kernel.py_func
        path = Path(func.__code__.co_filename)
        tree = ast.parse(path.read_text())
        own = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in ast.walk(node)
            if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store)
        }
        codes = [func.__code__, *(c for c in func.__code__.co_consts if hasattr(c, "co_names"))]
        read = {n for code in codes for n in code.co_names if n in func.__globals__}
        for global_name in sorted(read):
            value = func.__globals__[global_name]
            if isinstance(value, types.ModuleType):
                continue  # numpy: its functions, not values
            assert global_name in own, f"{name} reads {global_name}, defined in another file"
