"""The fault suite: the live worker, the real broker and the real engine, disturbed.

Every test runs ``drifthouse run`` worker processes on a 4-partition topic holding the small
simulated stream (two models over 12 hours, with drift, a 5xx spike and a latency regression),
with rules that raise critical alerts (to PagerDuty and Slack) and warnings (to Slack) at a
:class:`~tests.fakes.FakeApi` of its own. It disturbs the run (kills, outages, failing receivers,
poison, a replay beside it) and then compares what the run left with an undisturbed
:class:`Reference`, an in-process replay of the same topic through the same configuration:

- every ``metrics`` row, to the last digit (nothing lost, nothing doubled);
- every ``alerts`` row, all columns but ``run_id``;
- every request the receivers accepted, in order: each alert reached Slack once and PagerDuty
  once per state change (one ``trigger`` and one ``resolve`` per dedup key and episode).

``tests/workers.py`` holds the worker helpers (producing, configs, worker processes,
reading the store back). The suite is marked ``faults`` (and ``kafka``, ``slow``):
``pytest -m faults`` runs it alone.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from drifthouse.app.pipeline import WindowResult
from drifthouse.app.replay import replay, replay_alerts
from drifthouse.config import load_config, parse_duration
from drifthouse.sinks import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from tests.fakes import FakeApi, Recorded
from tests.workers import (
    PARTITIONS,
    Metrics,
    Workers,
    alert_rows,
    assert_same,
    log_digest,
    metric_rows,
    partition_of,
    produce_stream,
    sentinels,
    stored,
    write_config,
)

# Every alert state change is notified at the event time it happens (no group waits, no
# batching intervals, no repeats), so the live run and the replay owe the same notifications.
# The shipped rules' scopes: serving and drift model-wide (segment ""), one series per model.
RULES: list[dict[str, Any]] = [
    {"name": "serving-errors", "metric": "error_rate_5xx", "feature": "", "segment": "",
     "when": "value > 0.05", "severity": "critical"},
    {"name": "latency-regression", "metric": "latency_p95", "feature": "", "segment": "",
     "when": "value > 2 * baseline", "severity": "critical"},
    {"name": "data-drift", "metric": "psi", "segment": "", "when": "value > 0.25", "clear": "value < 0.1",
     "for": 2, "severity": "warning"},
]  # fmt: skip
_NOW = {"group_wait": 0, "group_interval": 0, "repeat_interval": "30d"}
ROUTES: list[dict[str, Any]] = [
    {"match": {"severity": "critical"}, "receivers": ["pagerduty", "slack"], **_NOW},
    {"match": {"severity": "warning"}, "receivers": ["slack"], "group_by": ["model"], **_NOW},
]


def alerting(api: FakeApi, **store: Any) -> dict[str, Any]:
    """Config sections: the rules, routes, and Slack and PagerDuty receivers aimed at ``api``;
    ``store`` replaces the store section when given."""
    sections: dict[str, Any] = {
        "rules": RULES,
        "routes": ROUTES,
        "receivers": {
            "slack": {
                "type": "slack",
                "channel": "#ml-alerts",
                "token": "xoxb-faults",
                "base_url": f"{api.url}/api/",
            },
            "pagerduty": {
                "type": "pagerduty",
                "routing_key": "faults-routing-key",
                "url": f"{api.url}/v2/enqueue",
            },
        },
        # The outbox and the alert state survive a killed worker; retries back off 2 s at most.
        "alerting": {"outbox_dir": "./alerting", "max_backoff": "2s"},
    }
    if store:
        sections["store"] = store
    return sections


# How long before a SIGKILL a request may have been answered yet not marked ``done``.
IN_FLIGHT = 3.0


def deliveries(api: FakeApi, kills: Sequence[float] = ()) -> tuple[list[Any], list[Any]]:
    """``(pagerduty, slack)``: the request bodies each API accepted, in order; the run id a
    PagerDuty event carries is left out (the reference is a replay with its own).

    ``kills`` are the ``time.monotonic()`` instants workers were SIGKILLed: a request answered
    up to :data:`IN_FLIGHT` seconds before one and sent again after it, the same, is the
    documented at-least-once of a kill between a receiver's answer and the outbox's ``done``
    row (docs/alerting.md); each such repeat is left out, once."""
    pagerduty = []
    for record in _without_repeats(api.ok("/v2/enqueue"), kills):
        body = record.body
        details = body.get("payload", {}).get("custom_details")
        if details is not None:
            body = {**body, "payload": {**body["payload"], "custom_details": {
                k: v for k, v in details.items() if k != "run_id"}}}  # fmt: skip
        pagerduty.append(body)
    slack = [(r.path, r.body) for r in _without_repeats(api.slack_calls(), kills)]
    return pagerduty, slack


def _without_repeats(records: list[Recorded], kills: Sequence[float]) -> list[Recorded]:
    repeats: set[int] = set()
    for kill in kills:
        in_flight = [r for r in records if kill - IN_FLIGHT <= r.at <= kill]
        for first in in_flight:
            again = next(
                (i for i, r in enumerate(records) if r.at > kill and i not in repeats
                 and (r.path, r.body) == (first.path, first.body)),
                None,
            )  # fmt: skip
            if again is not None:
                repeats.add(again)
    return [r for i, r in enumerate(records) if i not in repeats]


@dataclass(frozen=True)
class Reference:
    """What an undisturbed run of a topic leaves: rows, and the requests its receivers accepted."""

    topic: str
    closed_until: int  # windows ending at or before it are closed in the live run too
    metrics: Metrics
    alerts: list[tuple[Any, ...]]
    pagerduty: list[Any]
    slack: list[Any]


def reference_of(
    bootstrap: str, topic: str, profiles: dict[str, Any], folder: Path, closed_until: int
) -> Reference:
    """Replay ``topic`` in this process through the suite's configuration, notifying a
    fault-free :class:`FakeApi`. Windows past ``closed_until`` (the sentinels', which a live
    worker never closes) are written but not given to the rules."""
    api = FakeApi()
    try:
        config = write_config(
            folder, bootstrap, topic, f"reference-{uuid.uuid4().hex[:6]}", profiles,
            extra=alerting(api),
        )  # fmt: skip
        cfg = load_config(config)
        sink = MemorySink()
        stage = replay_alerts(cfg, sink, profiles, run_id="reference", notify=True, keep_rows=False)

        def rules(result: WindowResult) -> None:
            if result.end <= closed_until:
                stage(result)

        replay(
            cfg, source=f"kafka:{topic}", sink=sink, run_id="reference", profiles=profiles,
            on_window=[rules], dead_letters=MemoryDeadLetters(),
        )  # fmt: skip
        stage.finish()
        sink.flush()
        pagerduty, slack = deliveries(api)
    finally:
        api.close()
    reference = Reference(
        topic,
        closed_until,
        metric_rows(sink.rows("metrics"), closed_until),  # type: ignore[arg-type]
        alert_rows(sink.rows("alerts"), closed_until),  # type: ignore[arg-type]
        pagerduty,
        slack,
    )
    # The suite means something only if the stream raises and resolves pages.
    actions = [e["event_action"] for e in reference.pagerduty]
    assert "trigger" in actions, actions
    assert "resolve" in actions, actions
    assert any(a[3] == "resolved" for a in reference.alerts), "no alert resolved"
    return reference


@pytest.fixture(scope="session")
def shared_topic(
    kafka_bootstrap: str, kafka_admin: Any, small_stream: Any
) -> Iterator[tuple[str, int]]:
    """``(topic, closed_until)``: the small stream on a 4-partition topic, produced once for
    the tests that leave the topic alone (each reads it with a consumer group of its own)."""
    name = f"t-faults-{uuid.uuid4().hex[:8]}"
    spec = {"num_partitions": PARTITIONS, "replication_factor": 1, "configs": {}}
    kafka_admin.create_topics({name: spec}, wait_for_metadata=True)
    try:
        yield name, produce_stream(kafka_bootstrap, name, small_stream.records)
    finally:
        with contextlib.suppress(Exception):
            kafka_admin.delete_topics([name])


@pytest.fixture(scope="session")
def reference(
    kafka_bootstrap: str,
    shared_topic: tuple[str, int],
    small_stream: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Reference:
    """The undisturbed run of :func:`shared_topic`."""
    topic, closed_until = shared_topic
    folder = tmp_path_factory.mktemp("reference")
    return reference_of(kafka_bootstrap, topic, small_stream.profiles, folder, closed_until)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    """Slack and PagerDuty for one test (see :class:`tests.fakes.FakeApi`)."""
    server = FakeApi()
    yield server
    server.close()


def window_end(key: tuple[Any, ...]) -> int:
    """The end of a stored metric row's window (``30m/10m`` windows last 30 minutes)."""
    return key[0] + parse_duration(key[1].split("/")[0])


def check_stored(
    config: Path, reference: Reference, run_id: str = "live"
) -> tuple[Metrics, list[tuple[Any, ...]]]:
    """The run's ``metrics`` and ``alerts`` rows equal the reference's; a failure says what
    the workers logged."""
    try:
        return _check_stored(config, reference, run_id)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n\n{log_digest(config.parent)}") from None


def _check_stored(
    config: Path, reference: Reference, run_id: str
) -> tuple[Metrics, list[tuple[Any, ...]]]:
    metrics, alerts = stored(config, run_id)
    # The sentinels' windows stay open in a live run; a replay closes them at its end.
    metrics = {k: v for k, v in metrics.items() if window_end(k) <= reference.closed_until}
    assert_same(metrics, reference.metrics)
    alerts = [a for a in alerts if a[12] <= reference.closed_until]
    only_run = [a for a in alerts if a not in reference.alerts]
    only_reference = [a for a in reference.alerts if a not in alerts]
    assert (only_run, only_reference) == ([], []), (
        f"alerts differ: {len(alerts)} stored, {len(reference.alerts)} in the reference:\n"
        + "\n".join(f"only stored {a[:13]}" for a in only_run)
        + "\n"
        + "\n".join(f"only in the reference {a[:13]}" for a in only_reference)
    )
    assert len(alerts) == len(reference.alerts), "an alert row stored twice"
    return metrics, alerts


def check_delivered_once(
    api: FakeApi, reference: Reference, timeout: float = 60.0, kills: Sequence[float] = ()
) -> None:
    """Every notification of the reference reached the receivers, once, in the same order
    (but for a repeat of one in flight at one of the SIGKILLs ``kills``: :func:`deliveries`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pagerduty, slack = deliveries(api, kills)
        if len(pagerduty) >= len(reference.pagerduty) and len(slack) >= len(reference.slack):
            break
        time.sleep(0.2)
    time.sleep(1.0)  # anything sent twice would arrive now
    pagerduty, slack = deliveries(api, kills)
    assert _events(pagerduty) == _events(reference.pagerduty)
    assert pagerduty == reference.pagerduty, _first_difference(pagerduty, reference.pagerduty)
    assert [(p, b.get("text")) for p, b in slack] == [
        (p, b.get("text")) for p, b in reference.slack
    ]
    assert slack == reference.slack, _first_difference(slack, reference.slack)
    # PagerDuty by dedup key: one trigger, then one resolve, per episode of an alert.
    for key, actions in _by_key(pagerduty).items():
        assert all(a != b for a, b in itertools.pairwise(actions)), (key, actions)


def _first_difference(got: list[Any], want: list[Any]) -> str:
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return f"request {i} differs:\n got  {a}\n want {b}"
    return f"{len(got)} requests, {len(want)} expected"


def _events(bodies: list[Any]) -> list[tuple[str, str]]:
    return [(b["event_action"], b["dedup_key"]) for b in bodies]


def _by_key(bodies: list[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for action, key in _events(bodies):
        out.setdefault(key, []).append(action)
    return out


def failed(api: FakeApi) -> list[Recorded]:
    """Requests the API answered with an error."""
    return [r for r in api.requests if r.status >= 300]


Poll = Callable[[], bool]


def wait_for(what: str, ready: Poll, timeout: float = 120.0, every: float = 0.2) -> None:
    """Poll until ``ready()``; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class PacedProducer(threading.Thread):
    """Produces the stream evenly over ``seconds``, as model servers would, then the sentinels.

    Setting ``hurry`` sends the rest at once: a test whose disturbances are done need not wait
    out the pace it set to be sure they land while the stream flows.
    """

    def __init__(self, bootstrap: str, topic: str, records: list[Any], seconds: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.records, self.seconds = bootstrap, topic, records, seconds
        self.sent = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.hurry = threading.Event()

    def run(self) -> None:
        try:
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
            started = time.monotonic()
            step = 50
            for lo in range(0, len(self.records), step):
                self.before(lo)
                if self.stop.is_set():
                    return
                for r in self.records[lo : lo + step]:
                    producer.send(
                        self.topic, key=r.key, value=r.value, partition=partition_of(r.value)
                    )
                producer.flush()
                self.sent = lo + step
                due = started + self.seconds * self.share(lo + step)
                self.hurry.wait(max(0.0, due - time.monotonic()))
            for p, value in enumerate(sentinels(self.records)[1]):
                producer.send(self.topic, key=b"fraud", value=value, partition=p)
            producer.flush()
            producer.close()
        except BaseException as exc:
            self.error = exc

    def before(self, lo: int) -> None:
        """Called before the records from ``lo`` on are sent (a subclass may hold them back)."""

    def share(self, sent: int) -> float:
        """The share of :attr:`seconds` by which the first ``sent`` records are due."""
        return sent / len(self.records)


@dataclass
class PacedRun:
    """A live run on a topic of its own: worker processes on the suite's configuration (see
    :func:`alerting`), and the small stream produced at a pace while the test disturbs them."""

    bootstrap: str
    topic: str
    stream: Any  # tests.workers.Stream
    config: Path
    workers: Workers
    producer: PacedProducer

    @classmethod
    def of(
        cls, tmp_path: Path, bootstrap: str, topic: str, stream: Any, api: FakeApi, **options: Any
    ) -> PacedRun:
        """``options``: ``seconds`` of the :class:`PacedProducer`, ``sections`` replacing
        :func:`alerting`'s, ``name`` of the configuration's folder."""
        sections = options.get("sections") or alerting(api)
        name = options.get("name", "run")
        config = write_config(tmp_path, bootstrap, topic, name, stream.profiles, extra=sections)
        producer = PacedProducer(bootstrap, topic, stream.records, options["seconds"])
        return cls(bootstrap, topic, stream, config, Workers(config, PARTITIONS), producer)

    def finish(self, api: FakeApi, folder: Path, kills: Sequence[float] = ()) -> Reference:
        """The rest of the stream at once; when the workers are done, the undisturbed
        :class:`Reference` of the topic, whose every notification reached ``api`` once (see
        :func:`check_delivered_once` for ``kills``)."""
        records = self.stream.records
        self.producer.hurry.set()
        self.producer.join(timeout=120)
        assert self.producer.error is None, self.producer.error
        self.workers.wait_done(load_config(self.config), len(records))
        closed_until = sentinels(records)[0] - 30_000
        reference = reference_of(
            self.bootstrap, self.topic, self.stream.profiles, folder, closed_until
        )
        check_delivered_once(api, reference, kills=kills)
        return reference

    def stop(self) -> None:
        self.producer.stop.set()
        self.workers.stop_all()
