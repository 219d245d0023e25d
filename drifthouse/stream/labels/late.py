"""The late join: labels later than the stream's horizon, joined in ClickHouse, rewrite the
label metrics of their predictions' old windows (docs/model-performance.md, "Labels later than
the horizon").

With ``metrics.late_labels`` on, the stream hands on what its join could not join (labels,
predictions evicted without a label) and the label panes it is done with
(:meth:`~drifthouse.stream.labels.stage.LabelStage.take_spill_rows`). :func:`join_late_labels`
asks ClickHouse for the pairs (a JOIN on ``event_id``, :mod:`drifthouse.sinks.late_labels`),
loads the stored panes of the windows they fall in into a fresh
:class:`~drifthouse.stream.labels.windows.LabelWindows`, folds the pairs in with the stream's
own code, and writes the windows' ``metrics`` rows again under the same keys with a newer
``computed_at``: the rows the stream would have written had the labels come in time.

A window is rewritten only when the stream is done with it (every pane stored, ``final_until``)
and every pane it spans was loaded; the others wait for a later run (``waiting``). Each run
recomputes a touched window from the stored panes and *every* late pair of it, so running
twice, or over a span already done, writes the same values. ``owns`` keeps a run to some models
(a merge shard's: :mod:`drifthouse.app.late_join` runs this on a schedule, each shard for its
own models).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import msgspec
from clickhouse_connect.driver.client import Client

from drifthouse.config import Config
from drifthouse.detectors.label_sketch import LabelValue
from drifthouse.detectors.reference import Profile
from drifthouse.rows import MetricRow
from drifthouse.sinks import late_labels as store
from drifthouse.sinks.base import Sink
from drifthouse.stream.labels.estimates import HeldEstimates
from drifthouse.stream.labels.records import DAY_MS, JoinedPair, PredictionRecord
from drifthouse.stream.labels.stage import LabelStage
from drifthouse.stream.labels.windows import SpilledPane
from drifthouse.stream.windows import WindowSpec

__all__ = ["LateJoinReport", "join_late_labels", "late_join_steps"]

_SEGMENT = msgspec.json.Decoder(tuple[tuple[str, str], ...])
_LABEL = msgspec.json.Decoder(LabelValue)


@dataclass
class LateJoinReport:
    """What a run did: models looked at, pairs joined in ClickHouse, windows and rows written,
    and windows that wait for the stream to be done with them; ``waiting_since_s``: the
    earliest time (store clock, epoch seconds) a pair of a waiting window was stored, so the
    next run reaches back to it (``None`` when nothing waits)."""

    models: int = 0
    pairs: int = 0
    windows: int = 0
    rows: int = 0
    waiting: int = 0
    waiting_since_s: int | None = None

    def wait_for(self, stored_s: int) -> None:
        """A pair stored at ``stored_s`` is in a window that waits."""
        if self.waiting_since_s is None or stored_s < self.waiting_since_s:
            self.waiting_since_s = stored_s


def join_late_labels(
    client: Client,
    database: str,
    config: Config,
    profiles: Mapping[str, Profile],
    sink: Sink,
    *,
    since_s: int = 0,
    run_id: str = "live",
    computed_at: int | None = None,
    chunk_ms: int = 7 * DAY_MS,
    owns: Callable[[str], bool] | None = None,
) -> LateJoinReport:
    """Join the late labels stored since ``since_s`` (epoch seconds; ``0``: all) of the
    models ``owns`` accepts (all by default), rewrite the windows they touch through
    ``sink``, flush it; see the module docstring.

    The span of a model's touched predictions is taken ``chunk_ms`` (rounded up to whole
    longest windows) at a time: the windows starting in a chunk, with the panes and pairs of
    a longest window on either side, so memory does not grow with the span.
    """
    report = LateJoinReport()
    for _ in late_join_steps(
        client, database, config, profiles, sink, report, since_s=since_s, run_id=run_id,
        computed_at=computed_at, chunk_ms=chunk_ms, owns=owns,
    ):  # fmt: skip
        pass
    return report


def late_join_steps(
    client: Client,
    database: str,
    config: Config,
    profiles: Mapping[str, Profile],
    sink: Sink,
    report: LateJoinReport,
    *,
    since_s: int = 0,
    run_id: str = "live",
    computed_at: int | None = None,
    chunk_ms: int = 7 * DAY_MS,
    owns: Callable[[str], bool] | None = None,
) -> Iterator[None]:
    """:func:`join_late_labels` a chunk at a time, counted in ``report``: it yields after
    each chunk's rows are handed to ``sink`` (the caller may let the stream write between
    two chunks: only windows the stream is done with are rewritten), and flushes at the end."""
    at = computed_at if computed_at is not None else int(time.time() * 1000)
    specs = [WindowSpec.from_config(w) for w in config.windows]
    d = max(spec.size_ms for spec in specs)
    step = -(-chunk_ms // d) * d
    for model in store.models(client, database, run_id, since_s):
        if owns is not None and not owns(model):
            continue
        span = store.affected_span(client, database, model, run_id, since_s)
        if span is None:
            continue
        report.models += 1
        final = store.final_until(client, database, model, run_id)
        # Windows holding a touched prediction start less than a longest window before it.
        for lo in range((span[0] // d) * d - d, span[1] + 1, step):
            chunk = _Chunk(model, run_id, lo, lo + step, d, final)
            rows = _rewrite(client, database, config, profiles, chunk, at, report)
            sink.write(rows)
            report.rows += len(rows)
            yield
    sink.flush()


@dataclass(frozen=True)
class _Chunk:
    """Windows of ``model`` starting in ``[lo, hi)``; ``margin`` (the longest window) of
    panes and pairs is read on either side; ``final``: the stream's ``final_until``."""

    model: str
    run_id: str
    lo: int
    hi: int
    margin: int
    final: int


def _rewrite(
    client: Client,
    database: str,
    config: Config,
    profiles: Mapping[str, Profile],
    chunk: _Chunk,
    computed_at: int,
    report: LateJoinReport,
) -> list[MetricRow]:
    """The rows of the windows of one chunk touched by late pairs."""
    model, run_id = chunk.model, chunk.run_id
    lo, hi = chunk.lo - chunk.margin, chunk.hi + chunk.margin
    late = store.late_pairs(client, database, model, run_id, lo, hi)
    if not late:
        return []
    windows = LabelStage.from_config(config, profiles).windows
    specs = windows.specs
    index = {spec.name: k for k, spec in enumerate(specs)}
    windows.load_panes(
        SpilledPane(
            (model, p.model_version, index[p.window], p.pane_start),
            p.segment,
            base64.b64decode(p.state) if p.state else None,
            p.counters,
            chunk.final,
        )
        for p in store.panes(client, database, model, run_id, lo, hi)
        if p.window in index
    )
    pairs = [
        JoinedPair(
            PredictionRecord(
                p.event_id,
                model,
                p.model_version,
                p.ts_ms,
                p.score,
                p.pred_class,
                _SEGMENT.decode(p.segment),
            ),
            _LABEL.decode(p.label),
            p.label_ts_ms,
        )
        for p in late
    ]
    windows.add_pairs(pairs)
    report.pairs += sum(1 for p in late if chunk.lo <= p.ts_ms < chunk.hi)

    rows: list[MetricRow] = []
    first_waiting: int | None = None
    for w in windows.flush(None):
        if not chunk.lo <= w.start < chunk.hi:
            continue  # another chunk's (all of whose panes that chunk loads)
        spec = specs[w.spec_index]
        if w.end - spec.pane_ms + spec.size_ms >= chunk.final:
            report.waiting += 1  # the stream may still change one of its panes
            first_waiting = w.start if first_waiting is None else min(first_waiting, w.start)
            continue
        report.windows += 1
        rows += windows.rows(w, run_id=run_id, computed_at=computed_at)
    if rows:  # the stored estimates of these windows: estimation_error_* beside the new rows
        held = HeldEstimates()
        held.note(store.estimates(client, database, model, run_id, chunk.lo, chunk.hi))
        rows += held.errors(rows)
    if first_waiting is not None:
        # Every pair of a waiting window is at or after its start: the next run must find them.
        for p in late:
            if p.ts_ms >= first_waiting:
                report.wait_for(p.stored_s)
    return rows
