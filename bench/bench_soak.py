"""Soak: one live worker at a fixed rate for minutes, its memory and lag sampled.

    KAFKA_BOOTSTRAP=127.0.0.1:9092 .venv/bin/python bench/bench_soak.py \\
        [--rate EVENTS_PER_S] [--minutes M] [--warmup S] [--every S] [--out FILE.json] \\
        [--scenario demo --days D]

Produces prediction events (20 numeric + 5 categorical features, event time = now) at a fixed
rate into a fresh 4-partition topic while one ``drifthouse run`` worker consumes it with the
embedded store, 1-minute tumbling and 5-minute sliding windows (so windows close, are written
and forgotten all the time). Every ``--every`` seconds it samples the worker's resident memory
(``/proc/PID/status``, Linux) and, from the worker's health endpoint, the consumer lag (events
produced but not read yet, summed over partitions) and the merger's pending windows. At the end
it reports the memory slope after warm-up (least squares, MB per minute), the largest lag, and
the rates produced and consumed, as a markdown table, and writes every sample and the summary
to ``--out`` (JSON). The default rate is the one-process worker rate measured by
``bench/bench_worker.py`` (README, Performance); the producer is one Python thread of this
process (about 19,000 events/s on the shared 2-core machine), so on a small machine pick a rate
that it and the worker can both sustain. Start a broker first (``scripts/kafka start``).

With ``--scenario NAME`` the load comes from ``drifthouse produce --scenario NAME --rate R
--days D`` instead, in a process of its own: the simulated models (the demo's fraud classifier
and ETA regressor, with their faults, their segments and their delayed labels on the labels
topic), and a worker with the demo's configuration (its windows, rules and reference profiles);
the events produced are counted from the topic's end offsets. ``--days`` must cover the run:
the demo's models send one event a second together, so at ``--rate 2000`` ten minutes are about
14 simulated days.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaProducer

from drifthouse.config import Config
from drifthouse.kafka.admin import end_offsets, ensure_topics
from drifthouse.profiles.columns import build_profile

DEFAULT_RATE = 31_000  # events/s: `bench/bench_worker.py`, one worker process (README, Performance)
PARTITIONS = 4
NUMERIC, CATEGORICAL = 20, 5
CATEGORIES = [f"cat{i}" for i in range(12)]


def _feature_pool(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    numeric = rng.normal(size=(n, NUMERIC)).round(4)
    cats = rng.integers(0, len(CATEGORIES), size=(n, CATEGORICAL))
    pool = []
    for i in range(n):
        features: dict[str, Any] = {f"n{j}": float(numeric[i, j]) for j in range(NUMERIC)}
        features.update({f"c{j}": CATEGORIES[int(cats[i, j])] for j in range(CATEGORICAL)})
        pool.append(features)
    return pool


class Producer(threading.Thread):
    """Sends ``rate`` events per second, stamped with the wall clock, until stopped."""

    def __init__(self, bootstrap: str, topic: str, rate: int, pool: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.topic, self.rate = topic, rate
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 18)
        # Events are spliced from pre-encoded parts: encoding JSON must not cap the rate.
        self.tails = [
            b',"features":' + json.dumps(f).encode() + b',"prediction":0.5,"latency_ms":12.5}'
            for f in pool
        ]
        self.sent = 0
        self.behind_s = 0.0  # the most the producer fell behind its schedule
        self.stop = threading.Event()

    def run(self) -> None:
        head = b'{"model":"bench","model_version":"1","ts":%d,"event_id":"e%d"'
        started = time.monotonic()
        tick = 0.05
        while not self.stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            now_ms = int(time.time() * 1000)
            for i in range(self.sent, due):
                value = head % (now_ms, i) + self.tails[i % len(self.tails)]
                self.producer.send(self.topic, value=value, partition=i % PARTITIONS)
                if i % 1000 == 0:
                    self.sent = i
            self.sent = max(self.sent, due)
            self.behind_s = max(self.behind_s, time.monotonic() - started - self.sent / self.rate)
            time.sleep(tick)
        self.producer.flush()
        self.producer.close()


class ProduceCommand:
    """``drifthouse produce`` in a process of its own, with the interface of :class:`Producer`."""

    def __init__(self, folder: Path, cfg: Config, rate: int, scenario: str, days: float) -> None:
        self.folder, self.kafka = folder, cfg.kafka
        self.args = [sys.executable, "-m", "drifthouse", "produce", "-c", "drifthouse.yaml",
                     "--rate", str(rate), "--scenario", scenario, "--days", str(days)]  # fmt: skip
        self.stop = threading.Event()  # set by the caller; join() then interrupts the command
        self.behind_s = float("nan")  # not measured: the command paces itself
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.folder / "produce.log").open("wb")
        self.proc = subprocess.Popen(self.args, cwd=self.folder, stdout=log, stderr=log)

    @property
    def sent(self) -> int:
        """Predictions on the topic so far (its end offsets)."""
        return sum(end_offsets(self.kafka, self.kafka.topic).values())

    def join(self, timeout: float) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C: it flushes what it sent and stops
        self.proc.wait(timeout=timeout)


def _scenario_config(
    folder: Path, bootstrap: str, topic: str, port: int, scenario: str, days: float
) -> dict[str, Any]:
    """The demo's configuration and reference profiles for the scenario, read from ``topic``."""
    import yaml

    from drifthouse.config import load_config
    from drifthouse.demo.run import LABEL_DELAY_MIN, split_reference
    from drifthouse.demo.setup import build_profiles, write_config
    from drifthouse.produce import scenario_named
    from drifthouse.simulate import simulate

    sc = scenario_named(scenario, days)
    _, path, _ = write_config(folder, None, sc.models)
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    data["kafka"] = {"bootstrap": bootstrap, "topic": topic, "labels_topic": f"{topic}-labels",
                     "group": f"g-{topic}", "partials_topic": f"{topic}-partials",
                     "web_port": port}  # fmt: skip
    data["store"] = {"path": "./store", "ttl_days": {"predictions": 3650}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    # The reference day of the stream `drifthouse produce` sends (seed 0), as the demo builds it.
    reference, labels, _, _ = split_reference(
        simulate(sc, seed=0), sc.reference_end_ms, LABEL_DELAY_MIN[1] * 60_000
    )
    build_profiles(folder, reference, load_config(path), "2026-01-01T12:00:00Z", labels=labels)
    return data


def _rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS in ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/drifthouse/health/", timeout=3) as r:
            report: dict[str, Any] = json.loads(r.read())
            return report
    except OSError:
        return None


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(t, y)`` points, per unit of ``t``."""
    if len(points) < 2:
        return float("nan")
    t = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    return float(np.polyfit(t, y, 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE, help="events per second")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds left out of the slope")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--port", type=int, default=16998, help="the worker's health port")
    parser.add_argument("--out", type=Path, default=Path("bench-soak.json"))
    parser.add_argument(
        "--http-store",
        action="store_true",
        help="the engine behind HTTP in a process of its own (tests/sinks/chhttp.py), so the "
        "worker's memory is its own and not the embedded engine's",
    )
    parser.add_argument(
        "--scenario",
        default=None,
        help="produce with `drifthouse produce --scenario NAME` (demo, quick) instead",
    )
    parser.add_argument(
        "--days", type=float, default=14.0, help="with --scenario: its simulated days"
    )
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    rng = np.random.default_rng(2)
    folder = Path(tempfile.mkdtemp(prefix="drifthouse-bench-soak-"))
    topic = f"soak-{uuid.uuid4().hex[:8]}"
    cfg = Config.model_validate({"kafka": {"bootstrap": bootstrap, "topic": topic}})
    ensure_topics(cfg.kafka, {topic: PARTITIONS})
    pool = _feature_pool(rng, 20_000)
    profile = build_profile(
        model="bench", model_version="1", created_at="2026-01-01T00:00:00Z", source_digest="soak",
        settings=cfg.metrics, features={k: [f[k] for f in pool] for k in pool[0]},
        prediction=[0.5] * len(pool), latency_ms=[12.5] * len(pool), status=[200] * len(pool),
    )  # fmt: skip
    (folder / "bench.json").write_bytes(profile.to_json())
    config: dict[str, Any] = {
        "kafka": {"bootstrap": bootstrap, "topic": topic, "group": f"g-{topic}",
                  "partials_topic": f"{topic}-partials", "web_port": args.port},
        "store": {"path": "./store"},
        "windows": [{"size": "1m"}, {"size": "5m", "hop": "1m"}],
        "models": {"bench": {"reference": "bench.json"}},
    }  # fmt: skip
    if args.scenario is not None:
        config = _scenario_config(folder, bootstrap, topic, args.port, args.scenario, args.days)
    server = None
    if args.http_store:
        port = args.port + 1
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.sinks.chhttp", "--path", str(folder / "engine"),
             "--port", str(port)],
            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE,
        )  # fmt: skip
        if server.stdout is None or server.stdout.readline().strip() != b"ready":
            raise SystemExit("the HTTP store did not start")
        config["store"] = {"dsn": f"http://default:@127.0.0.1:{port}/drifthouse?compress=false"}
    (folder / "drifthouse.yaml").write_text(json.dumps(config))
    load = os.getloadavg()
    log = (folder / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "drifthouse", "run", "-c", "drifthouse.yaml"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    producer: Producer | ProduceCommand = (
        Producer(bootstrap, topic, args.rate, pool)
        if args.scenario is None
        else ProduceCommand(
            folder, Config.model_validate(config), args.rate, args.scenario, args.days
        )
    )
    samples: list[dict[str, Any]] = []
    try:
        while _health(args.port) is None:  # started, answering
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited; see {folder / 'worker.log'}")
            time.sleep(0.5)
        producer.start()
        started = time.monotonic()
        end = started + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(args.every)
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited; see {folder / 'worker.log'}")
            health = _health(args.port) or {}
            parts = health.get("partitions", {})
            lag = sum(p["lag"] or 0 for p in parts.values()) if parts else None
            sample = {
                "t": round(time.monotonic() - started, 1),
                "rss_mb": round(_rss_mb(worker.pid), 1),
                "store_rss_mb": round(_rss_mb(server.pid), 1) if server is not None else None,
                "produced": producer.sent,
                "consumed": health.get("events"),
                "lag": lag,
                "pending_windows": (health.get("merger") or {}).get("pending_windows"),
                "join_entries": (health.get("merger") or {}).get("label_join_entries"),
                "gc": health.get("gc"),
                "load1": os.getloadavg()[0],
            }
            samples.append(sample)
            print(json.dumps(sample), flush=True)
    finally:
        producer.stop.set()
        producer.join(timeout=60)
        worker.terminate()
        worker.wait(timeout=60)
        if server is not None:
            server.kill()
            server.wait()
    elapsed = samples[-1]["t"]
    steady = [s for s in samples if s["t"] >= args.warmup]
    lags = [s["lag"] for s in samples if s["lag"] is not None]
    steady_lags = [s["lag"] for s in steady if s["lag"] is not None]
    consumed = [s for s in steady if s["consumed"] is not None]
    summary = {
        "rate_target": args.rate,
        "minutes": args.minutes,
        "produced_per_s": round(samples[-1]["produced"] / elapsed),
        "consumed_per_s_steady": round(
            (consumed[-1]["consumed"] - consumed[0]["consumed"])
            / (consumed[-1]["t"] - consumed[0]["t"])
        )
        if len(consumed) > 1
        else None,
        "producer_behind_s": round(producer.behind_s, 2),
        "rss_mb_start": samples[0]["rss_mb"],
        "rss_mb_warm": steady[0]["rss_mb"] if steady else None,
        "rss_mb_end": samples[-1]["rss_mb"],
        "rss_mb_max": max(s["rss_mb"] for s in samples),
        "rss_slope_warmup_mb_per_min": round(
            _slope([(s["t"] / 60, s["rss_mb"]) for s in samples if s["t"] < args.warmup]), 2
        ),
        "rss_slope_steady_mb_per_min": round(
            _slope([(s["t"] / 60, s["rss_mb"]) for s in steady]), 3
        ),
        "lag_max": max(lags) if lags else None,
        "lag_max_steady": max(steady_lags) if steady_lags else None,
        "lag_end": lags[-1] if lags else None,
        "lag_slope_steady_per_min": round(
            _slope([(s["t"] / 60, s["lag"]) for s in steady if s["lag"] is not None]), 1
        ),
        "load_average_at_start": [round(x, 2) for x in load],
        "load1_max": max(s["load1"] for s in samples),
        "worker_log": str(folder / "worker.log"),
    }
    args.out.write_text(json.dumps({"summary": summary, "samples": samples}, indent=1))
    rate_in = summary["consumed_per_s_steady"]
    print(f"\nsoak: {args.minutes:g} min at {args.rate:,} events/s; samples in {args.out}\n")
    print("| figure | value |\n|---|---:|")
    rows = [
        ("events/s produced (target)", f"{summary['produced_per_s']:,} ({args.rate:,})"),
        ("events/s consumed after warm-up", f"{rate_in:,}" if rate_in is not None else "-"),
        ("RSS at start / after warm-up / end / max (MB)",
         f"{summary['rss_mb_start']} / {summary['rss_mb_warm']} / {summary['rss_mb_end']} / {summary['rss_mb_max']}"),
        ("RSS slope during warm-up (MB/min)", summary["rss_slope_warmup_mb_per_min"]),
        ("RSS slope after warm-up (MB/min)", summary["rss_slope_steady_mb_per_min"]),
        ("lag max / max after warm-up / at the end (events)",
         f"{summary['lag_max']} / {summary['lag_max_steady']} / {summary['lag_end']}"),
        ("lag slope after warm-up (events/min)", summary["lag_slope_steady_per_min"]),
        ("load average at start (1/5/15 min); max 1-min during the run",
         f"{summary['load_average_at_start']}; {summary['load1_max']:.2f}"),
    ]  # fmt: skip
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
