"""``bench_capacity.py``'s store figures: the cost of a row through the merger's sink.

The merger hands each window's rows to :class:`~drifthouse.sinks.ClickHouseSink`, which buffers
them and inserts columns; this times that (``write`` + ``flush``, CPU of this process and wall
clock) for metric, sketch and prediction-log rows, into the embedded engine and through HTTP to
the engine in a process of its own (``tests/sinks/chhttp.py``), next to ``client.insert`` of the
same columns built beforehand.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from drifthouse.sinks import ClickHouseSink, migrate, open_store
from drifthouse.sinks.tables import spec_for, to_columns

__all__ = ["measure_store", "measure_stores"]

Figures = dict[str, float]


def measure_store(dsn: str, kinds: dict[str, list[Any]], repeat: int) -> Figures:
    """µs per row: the sink (write + flush, windows' rows as the merger hands them over) and
    client.insert of prebuilt columns; CPU of this process and wall clock."""
    client = open_store(dsn, "capacity")
    migrate(client, "capacity", None)
    runs: list[Figures] = []
    for _ in range(repeat):
        figures: Figures = {}
        for name, rows in kinds.items():
            sink = ClickHouseSink(client, database="capacity", batch_rows=10_000)
            sink.write(rows[:100])
            sink.flush()  # table types described before timing
            step = 200
            w0, c0 = time.perf_counter(), time.process_time()
            for i in range(0, len(rows), step):
                sink.write(rows[i : i + step])
            sink.flush()
            figures[f"{name}_cpu_us"] = (time.process_time() - c0) / len(rows) * 1e6
            figures[f"{name}_wall_us"] = (time.perf_counter() - w0) / len(rows) * 1e6
            spec = spec_for(rows[0])
            columns = to_columns(spec, rows)
            types = sink._column_types(spec.name)
            w0, c0 = time.perf_counter(), time.process_time()
            for i in range(0, len(rows), 10_000):
                client.insert(spec.name, [c[i : i + 10_000] for c in columns], database="capacity",
                              column_names=list(spec.columns), column_type_names=types,
                              column_oriented=True)  # fmt: skip
            figures[f"{name}_peer_cpu_us"] = (time.process_time() - c0) / len(rows) * 1e6
            figures[f"{name}_peer_wall_us"] = (time.perf_counter() - w0) / len(rows) * 1e6
        runs.append(figures)
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _http_store(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = 18_000 + os.getpid() % 1000
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.sinks.chhttp", "--path", str(folder / "engine"),
         "--port", str(port)],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE,
    )  # fmt: skip
    if server.stdout is None or server.stdout.readline().strip() != b"ready":
        raise SystemExit("the HTTP store did not start")
    return server, f"http://default:@127.0.0.1:{port}/capacity?compress=false"


def measure_stores(kinds: dict[str, list[Any]], repeat: int, *, http: bool) -> dict[str, Figures]:
    """:func:`measure_store` on the embedded engine, and through HTTP with ``http``; prints
    the table."""
    with tempfile.TemporaryDirectory(prefix="drifthouse-capacity-") as tmp:
        stores = {"embedded": measure_store(f"chdb://{tmp}/embedded", kinds, repeat)}
        if http:
            server, dsn = _http_store(Path(tmp))
            try:
                stores["HTTP"] = measure_store(dsn, kinds, repeat)
            finally:
                server.terminate()
                server.wait(timeout=30)
    print(
        "\n| store, per row | sink CPU µs | sink wall µs | client.insert CPU µs | client.insert wall µs |"
    )
    print("|---|---:|---:|---:|---:|")
    for where, st in stores.items():
        for name in kinds:
            print(f"| {where}, {name} rows | {st[f'{name}_cpu_us']:.2f} | {st[f'{name}_wall_us']:.2f} | "
                  f"{st[f'{name}_peer_cpu_us']:.2f} | {st[f'{name}_peer_wall_us']:.2f} |")  # fmt: skip
    return stores
