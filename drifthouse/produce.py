"""``drifthouse produce``: a simulated prediction stream (and its labels) written to Kafka.

Predictions go to ``kafka.topic`` and labels to ``kafka.labels_topic``, keyed by model, both
created when missing. The scenario's event times (the demo's start on 2026-01-01) are moved to
the present, because a broker refuses records stamped far from its clock (Kafka 4.0: more than
an hour ahead) and the worker dead-letters events from the future:

- ``rate > 0``: the stream starts now and advances in real time, ``rate`` prediction events a
  second on average. The scenario's clock is scaled to fit (at ``rate`` 100, the demo's one
  event a second per pair of models runs 100 times faster: a simulated day every 15 minutes),
  keeping the order and the relative spacing of its events; each record is sent when the wall
  clock reaches its new time, so the event time is the time of sending.
- ``rate == 0``: as fast as possible, keeping the scenario's own spacing; the times are shifted
  by a whole number of hours, so that the last event sent is stamped at most an hour before now
  (nothing lies in the future) and the scenario's hours stay whole windows: its faults start on
  the hour, and the windows cut the stream as they cut the demo's.

``count`` bounds the prediction events sent (labels due by then ride along); Ctrl-C stops
early. Returns the number of prediction events sent.

``batch > 1`` sends predictions as batched messages (docs/events.md, "Batched messages"): each
model and version's events are held until ``batch`` of them make one message (in rows, or in
columns with ``columnar``), stamped with its last event's time; what is held goes out at the
end. Labels go out one per message, as they come.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn

from drifthouse.config import Config
from drifthouse.errors import SourceError, UsageError
from drifthouse.events import PredictionEvent, encode_batch, encode_columns
from drifthouse.kafka.admin import ensure_topics
from drifthouse.kafka.client import open_client, translate
from drifthouse.simulate import HOUR, MINUTE, Record, Scenario, simulate

__all__ = ["SCENARIOS", "Restamp", "run_produce", "scenario_named"]

#: The scenarios ``--scenario`` knows, by name.
SCENARIOS: dict[str, Callable[[], Scenario]] = {"demo": Scenario.demo, "quick": Scenario.quick}


def scenario_named(name: str, days: float | None = None) -> Scenario:
    """The scenario ``name``, over ``days`` simulated days instead of its own when given (its
    reference period and rate kept, its faults spread over the longer span as the demo's are)."""
    make = SCENARIOS.get(name)
    if make is None:
        raise UsageError(f"unknown scenario {name!r}; known scenarios: {', '.join(SCENARIOS)}")
    sc = make()
    if days is None:
        return sc
    if not days * 24 > sc.reference_hours:
        raise UsageError(
            f"--days must leave time after the scenario's {sc.reference_hours:g} reference "
            f"hours (got {days:g} days)"
        )
    longer = Scenario.demo(
        days=days,
        rate_per_min=sc.rate_per_min,
        start_ms=sc.start_ms,
        reference_hours=sc.reference_hours,
    )
    return Scenario(sc.name, sc.start_ms, days, sc.rate_per_min, sc.reference_hours, longer.faults)


PARTITIONS = 3  # of topics created here; a keyed topic's partitions are the operator's call later


def iso(ms: int) -> str:
    """``2026-11-27T03:50:00.123Z``: an RFC 3339 event time."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class Restamp:
    """Maps scenario times to present times: ``new = origin + (ts - start) / speed``.

    >>> r = Restamp(start=1_000, origin=50_000, speed=2.0)
    >>> r(1_000), r(3_000)
    (50000, 51000)
    """

    def __init__(self, *, start: int, origin: int, speed: float) -> None:
        self.start, self.origin, self.speed = start, origin, speed

    def __call__(self, ts_ms: int) -> int:
        return self.origin + int((ts_ms - self.start) / self.speed)

    def value(self, record: Record, ts_ms: int) -> bytes:
        """The record's JSON with its ``ts`` replaced (ISO text for predictions, ms for labels)."""
        event: dict[str, Any] = msgspec.json.decode(record.value)
        event["ts"] = iso(ts_ms) if record.topic == "predictions" else ts_ms
        return msgspec.json.encode(event)


def _events_per_second(scenario: Scenario) -> float:
    return len(scenario.models) * scenario.rate_per_min / (MINUTE / 1000)


def _plan(
    scenario: Scenario, *, rate: float, count: int | None, now_ms: int
) -> tuple[Iterator[Record], Restamp]:
    """The records to send (labels included) and how to restamp them."""
    records: Iterator[Record] = simulate(scenario, seed=0)
    if rate > 0:
        speed = rate / _events_per_second(scenario)
        return records, Restamp(start=scenario.start_ms, origin=now_ms, speed=speed)
    if count is None:
        last = scenario.end_ms
    else:
        # Hold the first `count` predictions (and the labels between them) to learn their span.
        held: list[Record] = []
        seen = 0
        for r in records:
            held.append(r)
            seen += r.topic == "predictions"
            if seen >= count:
                break
        last = held[-1].ts_ms if held else scenario.start_ms
        records = chain(held, records)
    shift = now_ms - last
    shift -= shift % HOUR  # whole hours: the scenario's windows stay whole
    return records, Restamp(start=scenario.start_ms, origin=scenario.start_ms + shift, speed=1.0)


def run_produce(
    config: Config,
    *,
    rate: float,
    scenario: str,
    count: int | None,
    console: Console,
    days: float | None = None,
    batch: int = 1,
    columnar: bool = False,
) -> int:
    """Write the simulated stream to Kafka (see the module docstring); return predictions sent.

    ``days``: the scenario's length in simulated days, when not its own (a long stream for a
    load test: ``--scenario demo --days 40 --rate 5000`` runs for about ten minutes).
    """
    sc = scenario_named(scenario, days)
    _check_options(rate, count, batch)
    kafka = config.kafka
    ensure_topics(kafka, {kafka.topic: PARTITIONS, kafka.labels_topic: PARTITIONS})
    from kafka.errors import KafkaError

    producer = _open_producer(config, rate)
    topics = {"predictions": kafka.topic, "labels": kafka.labels_topic}
    batches = _Batches(batch, columnar)
    records, restamp = _plan(sc, rate=rate, count=count, now_ms=int(time.time() * 1000))
    failures: list[BaseException] = []
    sent = {"predictions": 0, "labels": 0}
    try:
        with Progress(*_columns(), console=console, transient=False) as bar:
            task = bar.add_task("produce", total=count, sent="", rate="-", ts="")
            shown = 0.0
            for r in records:
                if count is not None and sent["predictions"] >= count:
                    break
                ts = restamp(r.ts_ms)
                if rate > 0:
                    wait = ts / 1000 - time.time()
                    if wait > 0:
                        time.sleep(wait)
                out = [(r.key, restamp.value(r, ts), ts)]
                if batch > 1 and r.topic == "predictions":
                    out = batches.add(r.key, out[0][1], ts)
                for key, value, stamp in out:
                    future = producer.send(
                        topics[r.topic], key=key, value=value, timestamp_ms=stamp
                    )
                    future.add_errback(failures.append)
                sent[r.topic] += 1
                if failures:
                    break
                now = time.monotonic()
                if now - shown >= 0.1:
                    shown = now
                    _show(bar, task, sent, ts)
            for key, value, stamp in batches.rest():
                producer.send(kafka.topic, key=key, value=value, timestamp_ms=stamp).add_errback(
                    failures.append
                )
            producer.flush(timeout=kafka.timeout / 1000)
            _show(bar, task, sent, None)
    except KeyboardInterrupt:
        console.print("stopped (Ctrl-C); flushing what was sent")
        producer.flush(timeout=kafka.timeout / 1000)
    except (KafkaError, OSError) as exc:
        producer.close(timeout=1)
        raise translate(exc, kafka, "producing the simulated stream", topic=kafka.topic) from exc
    producer.close(timeout=kafka.timeout / 1000)
    if failures:
        first = failures[0]
        raise SourceError(
            f"producing the simulated stream failed at {kafka.bootstrap}: "
            f"{type(first).__name__}: {first}"
        ) from first
    console.print(
        f"sent {sent['predictions']:,} predictions to {kafka.topic!r} and "
        f"{sent['labels']:,} labels to {kafka.labels_topic!r}",
        highlight=False,
    )
    return sent["predictions"]


def _check_options(rate: float, count: int | None, batch: int) -> None:
    if rate < 0:
        raise UsageError(f"--rate must be 0 (as fast as possible) or more (got {rate:g})")
    if count is not None and count < 0:
        raise UsageError(f"--count must be 0 or more (got {count})")
    if batch < 1:
        raise UsageError(f"--batch must be 1 (one event per message) or more (got {batch})")


class _Batches:
    """Prediction events held per model and version (and, in columns, feature and segment
    names) until ``size`` of them make one batched message."""

    def __init__(self, size: int, columnar: bool) -> None:
        self.size = size
        self._decode = msgspec.json.Decoder(PredictionEvent).decode
        self._encode = encode_columns if columnar else encode_batch
        self._columnar = columnar
        self._held: dict[tuple[object, ...], tuple[bytes, list[PredictionEvent]]] = {}

    def add(self, key: bytes, value: bytes, ts_ms: int) -> list[tuple[bytes, bytes, int]]:
        """The messages due once the event ``value`` is held: ``(key, value, timestamp)``."""
        event = self._decode(value)
        group: tuple[object, ...] = (event.model, event.model_version)
        if self._columnar:
            group += (tuple(event.features), tuple(event.segment))
        held = self._held.setdefault(group, (key, []))[1]
        held.append(event)
        if len(held) < self.size:
            return []
        del self._held[group]
        return [(key, self._encode(held), ts_ms)]

    def rest(self) -> list[tuple[bytes, bytes, int]]:
        """The messages of what is held, in the order their first events came."""
        out = [(key, self._encode(held), held[-1].ts_ms) for key, held in self._held.values()]
        self._held.clear()
        return out


def _open_producer(config: Config, rate: float) -> Any:
    """A producer that waits for every replica (``acks=all``); batching only when fast."""
    from kafka import KafkaProducer

    kafka = config.kafka
    return open_client(
        KafkaProducer,
        kafka,
        "opening the producer",
        topic=kafka.topic,
        acks="all",
        linger_ms=5 if rate == 0 or rate > 200 else 0,
        bootstrap_timeout_ms=kafka.timeout,
        max_block_ms=kafka.timeout,
    )


def _columns() -> tuple[ProgressColumn, ...]:
    return (
        TextColumn("[bold]produce"),
        BarColumn(),
        TextColumn("{task.fields[sent]}"),
        TextColumn("{task.fields[rate]:>7} events/s"),
        TextColumn("ts {task.fields[ts]}"),
        TimeElapsedColumn(),
    )


def _show(bar: Progress, task: Any, sent: dict[str, int], ts: int | None) -> None:
    elapsed = bar.tasks[task].elapsed or 0.0
    predictions = sent["predictions"]
    fields: dict[str, Any] = {
        "sent": f"{predictions:,} predictions, {sent['labels']:,} labels",
        "rate": f"{predictions / elapsed:,.0f}" if elapsed > 0.5 else "-",
    }
    if ts is not None:
        fields["ts"] = iso(ts)[:19] + "Z"
    bar.update(task, completed=predictions, **fields)
