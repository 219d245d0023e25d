"""Replays: historical data through the same pipeline as the live worker.

``drifthouse replay -c CONFIG --source file:PATH|kafka:TOPIC [--from T] [--to T] [--run-id ID]``
reads a bounded input, runs decode -> window -> sketch -> evaluate, closes every window at the
end and writes the rows under the replay's run id. A file source writes its dead letters beside
it, to ``PATH.dlq``.

``--labels`` and ``--metric-events`` (``file:PATH`` or ``kafka:TOPIC``) add delayed labels and
metric events. They are read whole (a Kafka topic from ``--from`` to its current end: labels
come after their predictions) and held beside the predictions, each partition in its own
order: a message goes in once the predictions' event time has passed its own, right before the
first prediction past it, as a live worker reading both topics would have seen it (see
:mod:`drifthouse.stream.side_inputs`). The labels therefore join as they do live whatever the
span replayed; :class:`LabelCounts` says what became of them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from drifthouse.app.assembly import (
    AlertStage,
    load_profiles,
    open_sink,
    replay_alerts,
)
from drifthouse.app.late_join import join_at_end
from drifthouse.app.pipeline import Pipeline, PipelineStats, WindowResult
from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.errors import DecodeError, SourceError, UsageError
from drifthouse.events import parse_ts
from drifthouse.profiles.auto import AutoReference
from drifthouse.sinks.base import Sink, WriteReport, finish
from drifthouse.sinks.predictions import PredictionLog
from drifthouse.stream.dead_letters import DeadLetters, FileDeadLetters
from drifthouse.stream.labels.late import LateJoinReport
from drifthouse.stream.sources import FileSource, Message, parse_source

__all__ = [
    "LabelCounts",
    "Progress",
    "ReplaySummary",
    "StoredReplay",
    "default_run_id",
    "load_profiles",
    "parse_time",
    "read_side_input",
    "replay",
    "replay_alerts",
    "replay_to_store",
    "run_batches",
]

# Called with (done, total) in the source's own unit (bytes for files, messages for Kafka).
Progress = Callable[[int, int, PipelineStats], None]


class _Ts(msgspec.Struct):
    ts: int | str | None = None


_TS = msgspec.json.Decoder(_Ts)


@dataclass
class _Refusals:
    """A replay's dead letters, passed on, with the first refusal of each reason kept."""

    inner: DeadLetters
    first: dict[str, DecodeError] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def send(self, message: Message, error: DecodeError) -> None:
        self.counts[error.reason] += 1
        self.first.setdefault(error.reason, error)
        self.inner.send(message, error)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class LabelCounts:
    """What became of a replay's labels; every label read is in exactly one of the other
    counts.

    ``joined``: met their prediction. ``unmatched``: no prediction with their ``event_id``
    within the label horizon (or no ``event_id``). ``expired``: late, stamped more than the
    horizon behind the model's clock, so never held. ``duplicate``: a second label of one
    prediction. ``waiting``: came before their prediction, which the input did not hold by its
    end. ``refused``: not a valid label event (dead-lettered). Beside them,
    ``predictions_sent_twice``: predictions whose ``event_id`` the join already held (counted
    as events each time, joined once).
    """

    read: int
    joined: int
    unmatched: int
    expired: int
    duplicate: int
    waiting: int
    refused: int
    predictions_sent_twice: int = 0

    @classmethod
    def of(cls, pipeline: Pipeline) -> LabelCounts:
        stage = pipeline.merge.labels
        if stage is None:
            return cls(pipeline.labels_read, 0, 0, 0, 0, 0, pipeline.labels_refused)
        s = stage.join.stats
        return cls(
            read=pipeline.labels_read,
            joined=s.joined,
            unmatched=s.unmatched,
            expired=s.expired,
            duplicate=s.duplicate,
            waiting=stage.join.waiting,
            refused=pipeline.labels_refused,
            predictions_sent_twice=s.predictions_duplicate,
        )


@dataclass
class ReplaySummary:
    """What a replay did: its run id, totals and where its dead letters went."""

    run_id: str
    source: str
    stats: PipelineStats
    seconds: float
    dead_letters: str | None = None
    windows: list[WindowResult] = field(default_factory=list, repr=False)
    #: What became of the labels (``--labels``), ``None`` without them.
    labels: LabelCounts | None = None
    #: Models on an automatic reference, with the span it was built from.
    auto_references: dict[str, AutoReference] = field(default_factory=dict)
    #: Dead letters (events, labels, metric events) by reason, and the first of each reason.
    refused: dict[str, int] = field(default_factory=dict)
    first_refused: dict[str, str] = field(default_factory=dict)
    #: With labels: how far a prediction came behind an earlier one (ms), and the horizon.
    disorder_ms: int = 0
    label_horizon_ms: int = 0

    @property
    def events_per_second(self) -> float:
        return self.stats.messages / self.seconds if self.seconds > 0 else 0.0


def parse_time(text: str | None, flag: str) -> int | None:
    """``--from``/``--to``: RFC 3339 (``2026-01-01T00:00:00Z``, a bare date) or epoch ms."""
    if text is None:
        return None
    value = text.strip()
    if value.isdigit():
        return int(value)
    if len(value) == 10:  # a bare date means its midnight UTC
        value += "T00:00:00Z"
    try:
        return parse_ts(value)
    except Exception as exc:
        raise UsageError(
            f"{flag} must be an RFC 3339 time such as 2026-01-01T00:00:00Z, a date, or epoch milliseconds (got {text!r})"
        ) from exc


def read_side_input(config: Config, source: str, *, from_ms: int | None) -> list[Message]:
    """``--labels`` or ``--metric-events`` (``file:PATH`` or ``kafka:TOPIC``), read whole (the
    pipeline holds them until the predictions' event time reaches each)."""
    src_kind, target = parse_source(source)
    messages: list[Message] = []
    if src_kind == "file":
        for batch, _ in FileSource(Path(target), batch_size=4096).batches():
            messages += batch
    else:
        from drifthouse.kafka import KafkaRangeSource

        for batch, _ in KafkaRangeSource(config.kafka, target, from_ms=from_ms).batches():
            messages += batch
    return messages


def run_batches(
    pipeline: Pipeline,
    batches: Iterator[tuple[Sequence[Message], int]],
    *,
    total: int,
    time_range: tuple[int | None, int | None] = (None, None),
    progress: Progress | None = None,
) -> None:
    """Feed a bounded source through ``pipeline`` (its side inputs held there, see
    :meth:`Pipeline.hold`) and close every window at its end."""
    lo, hi = time_range
    for messages, done in batches:
        if lo is not None or hi is not None:
            messages = [m for m in messages if _in_range(m, lo, hi)]
        pipeline.process(messages)
        if progress is not None:
            progress(done, total, pipeline.stats)
    pipeline.finish()


def _in_range(message: Message, lo: int | None, hi: int | None) -> bool:
    # Cheap pre-filter on the event time; messages that do not decode pass through to be
    # dead-lettered by the pipeline with their error.
    try:
        ts = _TS.decode(message.value).ts
    except Exception:
        return True
    if ts is None:
        return True
    try:
        ms = ts if isinstance(ts, int) else parse_ts(ts)
    except Exception:
        return True
    return (lo is None or ms >= lo) and (hi is None or ms < hi)


def default_run_id() -> str:
    """``replay-20260101T000000Z``: the run id of a replay given none (its start, UTC)."""
    return "replay-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class _Input:
    """A bounded source opened: its batches, size, partitions and dead letters."""

    batches: Iterator[tuple[Sequence[Message], int]]
    total: int
    partitions: list[int]
    dead: DeadLetters


def _open_input(
    config: Config,
    kind: str,
    target: str,
    *,
    from_ms: int | None,
    to_ms: int | None,
    dead_letters: DeadLetters | None,
) -> _Input:
    if kind == "file":
        path = Path(target)
        src = FileSource(path, batch_size=max(config.kafka.batch_size, 1024))
        dead = dead_letters or FileDeadLetters(Path(str(path) + ".dlq"))
        return _Input(src.batches(), src.total_bytes(), [0], dead)
    # The Kafka client is imported only when a Kafka source is used.
    from drifthouse.kafka import KafkaDeadLetters, KafkaRangeSource

    # Record timestamps bound the read; event times inside it are filtered by run_batches.
    ksrc = KafkaRangeSource(config.kafka, target, from_ms=from_ms, to_ms=to_ms)
    dead = dead_letters or KafkaDeadLetters(config.kafka, target)
    batches = ((msgs, prog[0]) for msgs, prog in ksrc.batches())
    return _Input(batches, ksrc.total(), sorted(ksrc.stop), dead)


def replay(
    config: Config,
    *,
    source: str,
    sink: Sink,
    run_id: str | None = None,
    from_ms: int | None = None,
    to_ms: int | None = None,
    profiles: Mapping[str, Profile] | None = None,
    on_window: Sequence[Callable[[WindowResult], None]] = (),
    progress: Progress | None = None,
    dead_letters: DeadLetters | None = None,
    labels: str | None = None,
    metric_events: str | None = None,
) -> ReplaySummary:
    """Run a bounded source through the pipeline into ``sink`` (flushed before returning);
    ``labels`` and ``metric_events`` name side inputs (``file:PATH`` or ``kafka:TOPIC``)."""
    kind, target = parse_source(source)
    if from_ms is not None and to_ms is not None and from_ms >= to_ms:
        raise UsageError(f"--from must be before --to (got {from_ms} >= {to_ms})")
    run_id = run_id or default_run_id()
    if run_id == "live":
        raise UsageError("--run-id 'live' is reserved for the live worker; choose another id")
    profiles = load_profiles(config) if profiles is None else profiles
    started = time.monotonic()
    opened = _open_input(
        config, kind, target, from_ms=from_ms, to_ms=to_ms, dead_letters=dead_letters
    )
    dead = opened.dead
    refusals = _Refusals(dead)
    pipeline = Pipeline(
        config=config,
        profiles=profiles,
        sink=sink,
        dead_letters=refusals,
        run_id=run_id,
        on_window=on_window,
        prediction_log=PredictionLog.for_config(config, profiles=profiles),
    )
    pipeline.expect_partitions(opened.partitions)
    pipeline.hold(
        labels=read_side_input(config, labels, from_ms=from_ms) if labels else (),
        metric_events=read_side_input(config, metric_events, from_ms=from_ms)
        if metric_events
        else (),
    )
    try:
        run_batches(
            pipeline,
            opened.batches,
            total=opened.total,
            time_range=(from_ms, to_ms),
            progress=progress,
        )
        sink.flush()
        dead.flush()
    finally:
        dead.close()
    dlq_where: str | None = None
    if isinstance(dead, FileDeadLetters) and dead.count:
        dlq_where = str(dead.path)
    elif kind == "kafka" and pipeline.stats.invalid + pipeline.stats.late:
        from drifthouse.kafka.dead_letters import dead_letter_topic

        dlq_where = f"kafka:{dead_letter_topic(target)}"
    _check_plausible(source, refusals, pipeline.stats, dlq_where)
    return ReplaySummary(
        run_id,
        source,
        pipeline.stats,
        time.monotonic() - started,
        dlq_where,
        labels=LabelCounts.of(pipeline) if labels else None,
        auto_references=pipeline.merge.auto_references(),
        refused=dict(refusals.counts),
        disorder_ms=pipeline.max_disorder_ms,
        label_horizon_ms=config.metrics.label_horizon,
        first_refused={r: f"{e.detail} (at `{e.path}`)" for r, e in refusals.first.items()},
    )


def _check_plausible(
    source: str, refusals: _Refusals, stats: PipelineStats, dlq_where: str | None
) -> None:
    implausible = refusals.first.get("implausible_ts")
    if implausible is not None and stats.events == 0:
        # Not one event in range: the whole input is in the wrong units, not a few bad events.
        raise SourceError(
            f"{source}: no event has a plausible time ({refusals.counts['implausible_ts']:,} "
            f"refused, kept in {dlq_where or 'the dead letters'}); the first: {implausible.detail}"
        )


@dataclass
class StoredReplay:
    """A replay into the configured store (``drifthouse replay``): what it did, its alert
    stage (alerts recorded, and the metric rows kept for a backtest) and what the store
    acknowledged."""

    summary: ReplaySummary
    alerts: AlertStage
    written: WriteReport
    profiles: Mapping[str, Profile]
    #: The late join run at the end (``metrics.late_labels``), if any.
    late: LateJoinReport | None = None
    #: Rows of the run id deleted first (``--replace``), per table.
    replaced: dict[str, int] = field(default_factory=dict)


def replay_to_store(
    config: Config,
    *,
    source: str,
    run_id: str | None = None,
    from_ms: int | None = None,
    to_ms: int | None = None,
    notify: bool = False,
    keep_rows: bool = False,
    progress: Progress | None = None,
    labels: str | None = None,
    metric_events: str | None = None,
    replace: bool = False,
) -> StoredReplay:
    """:func:`replay` into the configured store, with the rules: alert rows under the
    replay's run id, receivers told only with ``notify``, metric rows kept with
    ``keep_rows``. A run id that already holds rows is refused, or with ``replace`` its rows
    are deleted first (:mod:`drifthouse.app.reuse`). The sink is closed at the end."""
    from drifthouse.app.reuse import claim_run_id, free_run_id

    profiles = load_profiles(config)
    if run_id == "live":
        raise UsageError("--run-id 'live' is reserved for the live worker; choose another id")
    sink = open_sink(config, profiles)  # the references too: recipe psi_range compares with them
    try:
        if run_id is None:
            run_id = free_run_id(sink.client, sink.database, default_run_id())
        replaced = claim_run_id(
            sink.client, sink.database, run_id, replace=replace, cluster=config.store.cluster
        )
    except BaseException:
        sink.close()
        raise
    alerts = replay_alerts(
        config, sink, profiles, run_id=run_id, notify=notify, keep_rows=keep_rows
    )
    summary = replay(
        config,
        source=source,
        sink=sink,
        run_id=run_id,
        from_ms=from_ms,
        to_ms=to_ms,
        profiles=profiles,
        on_window=[alerts],
        progress=progress,
        labels=labels,
        metric_events=metric_events,
    )
    alerts.finish()
    late = join_at_end(config, sink, profiles, run_id)  # metrics.late_labels
    return StoredReplay(summary, alerts, finish(sink), profiles, late, replaced)
