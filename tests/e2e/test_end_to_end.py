"""End to end through the real broker, as a user would run it.

``drifthouse produce --scenario quick`` writes the demo's faults in one simulated day (12 clean
hours, then gradual and sudden drift, a new category, rising missing values, a latency
regression, a 5xx spike and an accuracy drop; 57,600 predictions and their labels) to a
3-partition topic, stamped with the present. Two ``drifthouse run`` worker processes share it,
with the demo's configuration (its windows, rules and routes) whose ``slack`` and
``pagerduty`` receivers are the real clients aimed at local servers speaking those APIs
(:class:`tests.fakes.FakeApi`). When the workers have caught up, the test checks in the store
that the demo's fault-to-alert logic (:func:`drifthouse.demo.findings.find`) finds every fault
caught on the right model, feature and metric, and nothing before its onset; that the alerts
reached Slack and, the critical ones only, PagerDuty; and that ``drifthouse replay`` of the same
topic range writes the same ``metrics`` rows to the last digit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from drifthouse.config import Config, load_config
from drifthouse.demo.findings import LABEL_METRICS, find
from drifthouse.demo.run import LABEL_DELAY_MIN, split_reference
from drifthouse.demo.setup import build_profiles, write_config
from drifthouse.kafka.admin import ensure_topics
from drifthouse.rows import AlertRow
from drifthouse.simulate import Fault, Record, Scenario, simulate
from tests.fakes import FakeApi
from tests.workers import ROWS_SQL, Workers, assert_same, metrics_of, query_store

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# `drifthouse produce` creates 3-partition topics and keys events by model: `eta` lands on
# partition 0 and `fraud` on 1. Partition 2 gets one event before the stream starts: a partition
# that never receives any holds every window back (see test_an_empty_partition_...).
PARTITIONS = 3
QUIET_PARTITION = 2
WORKERS = 2
SEED = 0  # the seed `drifthouse produce` simulates with
REPLAY_RUN = "e2e-replay"
SLACK_TOKEN = "xoxb-e2e-test-token"
ROUTING_KEY = "e2e-routing-key-0123456789abcdef"


@dataclass
class EndToEnd:
    """What the run did, and what it left in the store and at the receivers."""

    config_path: Path
    config: Config
    scenario: Scenario
    faults: list[Fault]  # the scenario's faults, moved to the times they were produced at
    reference_end_ms: int  # the end of the clean period, in produced time
    quiet_ms: int  # the time of the one event in the quiet partition
    first_ms: int  # the first and last produced event times
    last_ms: int
    predictions: int
    alerts: list[AlertRow]  # run `live`, as stored
    replay_alerts: list[AlertRow]
    live: dict[tuple[Any, ...], tuple[float, int]]
    replayed: dict[tuple[Any, ...], tuple[float, int]]
    api: FakeApi
    seconds: dict[str, float]

    @property
    def windows(self) -> dict[int, tuple[str, int]]:
        return {w.size: (w.name, w.pane_ms) for w in self.config.windows}


_ALERTS_SQL = (
    "SELECT toUnixTimestamp64Milli(ts), rule, severity, status, model, model_version, feature, "
    "segment, metric, value, threshold, toUnixTimestamp64Milli(window_start), "
    "toUnixTimestamp64Milli(window_end), message, receivers, dedup_key, run_id "
    "FROM alerts FINAL WHERE run_id = {run:String} "
    "ORDER BY window_end, ts, rule, model, model_version, feature, segment, metric, status"
)


def _alert_rows(rows: list[list[Any]]) -> list[AlertRow]:
    fields = AlertRow.__struct_fields__  # the column order of _ALERTS_SQL
    return [AlertRow(**dict(zip(fields, row, strict=True))) for row in rows]


def _write_config(
    folder: Path, bootstrap: str, topic: str, api: FakeApi, scenario: Scenario
) -> Path:
    """The demo's configuration (windows, rules, routes), read from Kafka, alerting the fakes."""
    folder.mkdir(parents=True)
    _, path, _ = write_config(folder, None, scenario.models)
    data = yaml.safe_load(path.read_text())
    data["kafka"] = {
        "bootstrap": bootstrap,
        "topic": topic,
        "labels_topic": f"{topic}-labels",
        "metrics_topic": f"{topic}-metrics",
        "group": f"{topic}-workers",
        "partials_topic": f"{topic}-partials",
        "idle_after": "3s",
        "web_port": "${DRIFTHOUSE_WEB_PORT}",  # each worker process gets its own
    }
    data["store"]["serve_port"] = None
    data["receivers"] = {
        "slack": {
            "type": "slack",
            "channel": "#ml-alerts",
            "token": "${SLACK_BOT_TOKEN}",
            "base_url": f"{api.url}/api/",
        },
        "pagerduty": {
            "type": "pagerduty",
            "routing_key": "${PAGERDUTY_ROUTING_KEY}",
            "url": f"{api.url}/v2/enqueue",
        },
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _shift(bootstrap: str, topic: str, scenario: Scenario) -> tuple[int, int, int]:
    """How far ``drifthouse produce`` moved the scenario's times, and the first and last
    produced event times: from one record on the topic and the simulated event of its id."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got: list[Any] = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = consumer.poll(timeout_ms=1_000, max_records=1).get(tp, [])
    finally:
        consumer.close()
    assert got, f"nothing on {topic} partition 0"
    event_id, stamped = json.loads(got[0].value)["event_id"], got[0].timestamp
    times = [r.ts_ms for r in simulate(scenario, seed=SEED, labels=False)]
    for r in simulate(scenario, seed=SEED, labels=False):
        if json.loads(r.value)["event_id"] == event_id:
            shift = stamped - r.ts_ms
            return shift, times[0] + shift, times[-1] + shift
    raise AssertionError(f"event {event_id} is not in the simulated stream")


def _send_one(bootstrap: str, topic: str, record: Record) -> int:
    """One event, stamped now, to the partition the stream does not reach; returns its time."""
    from kafka import KafkaProducer

    now = int(time.time() * 1000)
    event = json.loads(record.value)
    event.update(ts=now, event_id="e2e-quiet-partition")
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(
        topic, key=record.key, value=json.dumps(event).encode(), partition=QUIET_PARTITION,
        timestamp_ms=now,
    )  # fmt: skip
    producer.flush()
    producer.close()
    return now


def _moved(fault: Fault, shift: int) -> Fault:
    end = None if fault.end_ms is None else fault.end_ms + shift
    return dataclasses.replace(fault, start_ms=fault.start_ms + shift, end_ms=end)


def _wait_quiet(api: FakeApi, quiet_s: float = 4.0, timeout_s: float = 60.0) -> None:
    """Until the fakes have received nothing new for ``quiet_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    seen, since = len(api.requests), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if len(api.requests) != seen:
            seen, since = len(api.requests), time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return


def _run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "drifthouse", *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert done.returncode == 0, f"drifthouse {' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def e2e(
    kafka_bootstrap: str, kafka_admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EndToEnd]:
    # The secrets come from the environment, as in production; the workers inherit it.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
        env.setenv("PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
        env.setenv("DRIFTHOUSE_WEB_PORT", "0")  # set per worker process by Workers
        yield from _end_to_end(kafka_bootstrap, kafka_admin, tmp_path_factory)


def _end_to_end(
    kafka_bootstrap: str, kafka_admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EndToEnd]:
    seconds: dict[str, float] = {}
    started = time.monotonic()
    scenario = Scenario.quick()
    topic = f"e2e-{os.getpid()}-{int(time.time())}"
    api = FakeApi()
    folder = tmp_path_factory.mktemp("e2e") / "drifthouse"
    path = _write_config(folder, kafka_bootstrap, topic, api, scenario)
    config = load_config(path)
    # The reference profiles, with the labels of the reference period (the accuracy baseline),
    # built as the demo builds them.
    reference, labels, _, _ = split_reference(
        simulate(scenario, seed=SEED), scenario.reference_end_ms, LABEL_DELAY_MIN[1] * 60_000
    )
    build_profiles(folder, reference, config, "2026-01-01T12:00:00Z", labels=labels)
    ensure_topics(config.kafka, {topic: PARTITIONS, config.kafka.labels_topic: PARTITIONS})
    workers = Workers(path, PARTITIONS, cli=True)
    try:
        for _ in range(WORKERS):
            workers.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(workers.health()):
            time.sleep(0.5)
        seconds["workers_up"] = time.monotonic() - started
        quiet_ms = _send_one(kafka_bootstrap, topic, reference["fraud"][0])
        t = time.monotonic()
        produced = _run(
            ["produce", "-c", str(path), "--rate", "0", "--scenario", "quick"], folder, 300
        )
        seconds["produce"] = time.monotonic() - t
        match = re.search(r"sent ([\d,]+) predictions", produced.stdout + produced.stderr)
        assert match, produced.stderr
        predictions = int(match.group(1).replace(",", ""))
        t = time.monotonic()
        workers.wait_done(config, predictions)
        _wait_quiet(api)
        seconds["catch_up"] = time.monotonic() - t
        shares = [sum(1 for _ in h.get("partitions", {})) for h in workers.health()]
        assert all(shares), f"every worker should hold partitions: {shares}"
    finally:
        workers.stop_all()
    shift, first_ms, last_ms = _shift(kafka_bootstrap, topic, scenario)
    t = time.monotonic()
    sent_before_replay = len(api.requests)
    _run(
        ["replay", "-c", str(path), "--source", f"kafka:{topic}", "--from", str(first_ms),
         "--to", str(last_ms + 1), "--labels", f"kafka:{config.kafka.labels_topic}",
         "--run-id", REPLAY_RUN],
        folder,
        300,
    )  # fmt: skip
    seconds["replay"] = time.monotonic() - t
    assert len(api.requests) == sent_before_replay, "a replay without --notify sends nothing"
    # Read in one process (the engine admits one data folder per process, and each start costs).
    alerts, replay_alerts, live, replayed = query_store(
        path,
        [
            (_ALERTS_SQL, "live"),
            (_ALERTS_SQL, REPLAY_RUN),
            (ROWS_SQL, "live"),
            (ROWS_SQL, REPLAY_RUN),
        ],
    )
    run = EndToEnd(
        config_path=path,
        config=config,
        scenario=scenario,
        faults=[_moved(f, shift) for f in scenario.faults],
        reference_end_ms=scenario.reference_end_ms + shift,
        quiet_ms=quiet_ms,
        first_ms=first_ms,
        last_ms=last_ms,
        predictions=predictions,
        alerts=_alert_rows(alerts),
        replay_alerts=_alert_rows(replay_alerts),
        live=metrics_of(live),
        replayed=metrics_of(replayed),
        api=api,
        seconds=seconds,
    )
    seconds["total"] = time.monotonic() - started
    print(f"\nend to end: {predictions:,} predictions; seconds {seconds}")
    try:
        yield run
    finally:
        api.close()
        topics = [topic, config.kafka.labels_topic, config.kafka.partials_topic, f"{topic}.dlq"]
        existing = set(kafka_admin.list_topics())
        kafka_admin.delete_topics([t for t in topics if t in existing])


PIPELINE_FAULTS = [f.name for f in Scenario.quick().faults if f.expect not in LABEL_METRICS]
LABEL_FAULTS = [f.name for f in Scenario.quick().faults if f.expect in LABEL_METRICS]


def _fault(run: EndToEnd, name: str) -> Fault:
    return next(f for f in run.faults if f.name == name)


def test_the_stream_was_moved_by_whole_hours(e2e: EndToEnd) -> None:
    # So its windows are the demo's: the faults start on the hour, and a window holds the
    # same events as in `drifthouse demo` of the same scenario.
    shift = e2e.faults[0].start_ms - e2e.scenario.faults[0].start_ms
    assert shift % 3_600_000 == 0
    assert e2e.faults[0].start_ms % 3_600_000 == 0


def test_every_closed_window_holds_every_event_produced(e2e: EndToEnd) -> None:
    hourly = {
        k: v for k, (v, _) in e2e.live.items() if k[1] == "1h" and k[4:7] == ("", "", "events")
    }
    closed = max(k[0] for k in hourly) + 3_600_000
    # The last hour is still open (no later event moved the watermark past it); every event
    # before it is counted once, whichever worker read it.
    shift = e2e.faults[0].start_ms - e2e.scenario.faults[0].start_ms
    stream = simulate(e2e.scenario, seed=SEED, labels=False)
    want = sum(1 for r in stream if r.ts_ms + shift < closed) + (e2e.quiet_ms < closed)
    assert sum(hourly.values()) == want
    assert want > 0.9 * e2e.predictions
    assert e2e.last_ms < closed + 3_600_000


@pytest.mark.parametrize("name", PIPELINE_FAULTS)
def test_each_injected_fault_is_caught_after_its_onset(e2e: EndToEnd, name: str) -> None:
    fault = _fault(e2e, name)
    finding = find(fault, e2e.alerts, windows=e2e.windows, reached_ms=None)
    assert finding.alert is not None, f"{name}: {finding.note}; alerts: {e2e.alerts}"
    assert finding.alert.model == fault.model
    assert finding.alert.metric == fault.expect
    assert finding.alert.feature == fault.feature
    assert finding.alert.window_end > fault.start_ms


@pytest.mark.parametrize("name", PIPELINE_FAULTS)
def test_no_alert_for_a_fault_before_its_onset(e2e: EndToEnd, name: str) -> None:
    fault = _fault(e2e, name)
    early = [
        a
        for a in e2e.alerts
        if a.status == "firing"
        and a.model == fault.model
        and a.feature == fault.feature
        and a.metric == fault.expect
        and a.window_end <= fault.start_ms
    ]
    assert not early, early


def test_the_clean_reference_period_raises_nothing(e2e: EndToEnd) -> None:
    early = [a for a in e2e.alerts if a.window_end <= e2e.reference_end_ms]
    assert not early, early


def _slack_alerts(api: FakeApi) -> set[tuple[str, str, str, str, str]]:
    """(rule, severity, status, model, feature) of every alert in the Slack messages posted."""
    out = set()
    for call in api.slack_calls("chat.postMessage") + api.slack_calls("chat.update"):
        blocks = call.body["blocks"]
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        for block in blocks:
            text = block.get("text", {}).get("text", "") if block["type"] == "section" else ""
            head = re.search(r"\*(\S+)\* \((\w+), (\w+)\)\nmodel `([^`]+)`", text)
            if head is not None:
                feature = re.search(r"feature `([^`]+)`", text)
                out.add((*head.groups(), feature.group(1) if feature else ""))
    return out


def test_alerts_reach_slack_and_critical_ones_pagerduty(e2e: EndToEnd) -> None:
    firing = [a for a in e2e.alerts if a.status == "firing"]
    critical = [a for a in firing if a.severity == "critical"]
    assert critical, "the 5xx spike and the latency regression page someone"
    assert any(a.severity == "warning" for a in firing)
    for a in firing:
        want = ["pagerduty", "slack"] if a.severity == "critical" else ["slack"]
        assert a.receivers == want, a
    # PagerDuty: one trigger per critical alert, with its dedup key; never a warning.
    events = e2e.api.pd_events()
    triggers = [e for e in events if e["event_action"] == "trigger"]
    assert {e["payload"]["severity"] for e in triggers} == {"critical"}
    assert {e["dedup_key"] for e in triggers} == {a.dedup_key for a in critical}
    assert all(e["routing_key"] == ROUTING_KEY for e in events)
    resolved = {
        a.dedup_key for a in e2e.alerts if a.status == "resolved" and a.severity == "critical"
    }
    assert {e["dedup_key"] for e in events if e["event_action"] == "resolve"} == resolved
    # Slack: every firing alert, critical and warning, in a message to the channel.
    posted = _slack_alerts(e2e.api)
    want = {(a.rule, a.severity, "firing", a.model, a.feature) for a in firing}
    assert want <= posted, want - posted
    for call in e2e.api.slack_calls("chat.postMessage"):
        assert call.body["channel"] == "#ml-alerts"
        assert call.headers.get("Authorization", call.headers.get("authorization")) == (
            f"Bearer {SLACK_TOKEN}"
        )


def test_a_replay_of_the_topic_range_writes_the_same_metrics_rows(e2e: EndToEnd) -> None:
    # The live run wrote every window the watermark closed; the replay, bounded by --to,
    # closes the open ones too: compare the windows both closed, label metrics included (the
    # replay reads the labels topic with --labels).
    sizes = {w.name: w.size for w in e2e.config.windows}
    closed = max(k[0] + sizes[k[1]] for k in e2e.live)

    def comparable(rows: dict[tuple[Any, ...], Any]) -> dict[tuple[Any, ...], Any]:
        return {k: v for k, v in rows.items() if k[0] + sizes[k[1]] <= closed}

    live, replayed = comparable(e2e.live), comparable(e2e.replayed)
    assert len(live) > 10_000
    assert_same(live, replayed)


def test_a_replay_raises_the_same_alerts(e2e: EndToEnd) -> None:
    def key(a: AlertRow) -> tuple[Any, ...]:
        return (a.rule, a.status, a.model, a.feature, a.metric, a.window_start, a.value)

    horizon = max(a.window_end for a in e2e.alerts)
    replayed = [a for a in e2e.replay_alerts if a.window_end <= horizon]
    # Alerts on label metrics are evaluated each time late labels rewrite a window, on the
    # labels in by then, which follows their arrival, not event time alone: the same rules
    # fire on the same models, but not necessarily on the same write.
    live_labels = {(a.rule, a.model) for a in e2e.alerts if a.metric in LABEL_METRICS}
    replay_labels = {(a.rule, a.model) for a in replayed if a.metric in LABEL_METRICS}
    assert live_labels == replay_labels
    assert live_labels, "the accuracy drop raises an alert in both runs"
    assert [key(a) for a in e2e.alerts if a.metric not in LABEL_METRICS] == [
        key(a) for a in replayed if a.metric not in LABEL_METRICS
    ]


@pytest.mark.parametrize("name", LABEL_FAULTS)
def test_the_accuracy_drop_is_caught_from_the_labels(e2e: EndToEnd, name: str) -> None:
    fault = _fault(e2e, name)
    label_rows = [k for k in e2e.live if k[2] == fault.model and k[6] == fault.expect]
    assert label_rows, f"no {fault.expect} rows for {fault.model}: the labels topic is not read"
    finding = find(fault, e2e.alerts, windows=e2e.windows, reached_ms=None)
    assert finding.alert is not None, finding.note
    assert finding.alert.metric == fault.expect
    early = [a for a in e2e.alerts if a.metric == fault.expect and a.window_end <= fault.start_ms]
    assert not early, early


def test_an_empty_partition_does_not_hold_windows_back(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any
) -> None:
    """Fewer models than partitions is common (keys are model names): a partition that never
    sees an event must count as idle, not hold the other partitions' windows back forever."""
    from kafka import KafkaProducer

    from tests.workers import profiles_from

    topic = make_topic(partitions=2)
    sc = Scenario.demo(days=0.5, rate_per_min=2, reference_hours=6)
    records = [r for r in simulate(sc, seed=5) if r.topic == "predictions"]
    profiles = profiles_from([r for r in records if r.ts_ms < sc.reference_end_ms], Config())
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for r in records:
        producer.send(topic, key=r.key, value=r.value, partition=0)  # partition 1 stays empty
    producer.flush()
    producer.close()
    (tmp_path / "refs").mkdir()
    for model, profile in profiles.items():
        (tmp_path / "refs" / f"{model}.json").write_bytes(profile.to_json())
    cfg = {
        "kafka": {"bootstrap": kafka_bootstrap, "topic": topic, "group": f"{topic}-g",
                  "partials_topic": f"{topic}-partials", "idle_after": "2s"},
        "store": {"path": "./data", "ttl_days": {"predictions": 3650}},
        "windows": [{"size": "1h"}],
        "models": {m: {"reference": f"refs/{m}.json"} for m in profiles},
    }  # fmt: skip
    path = tmp_path / "drifthouse.yaml"
    path.write_text(json.dumps(cfg))
    workers = Workers(path, 2)
    written = 0
    try:
        workers.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not written:
            time.sleep(1.0)
            merger = next((h["merger"] for h in workers.health() if h.get("merger")), None)
            written = merger["windows_written"] if merger else 0
    finally:
        workers.stop_all()
    assert written > 0, "no window written while partition 1 never received an event"
