"""The late join on a schedule (``metrics.late_labels_every``; docs/model-performance.md,
"Labels later than the horizon").

Each merge shard's merger runs :func:`~drifthouse.stream.labels.late.join_late_labels` for its
own models only (:func:`shard_models`), at whole multiples of the period (UTC: ``1h`` on the
hour, ``1d`` at midnight), between its batches: a run takes the merge loop's lock one chunk at a
time, so batches and a rebalance wait for one chunk at most. The shard's
merger is the one process that writes its models' label panes, unjoined labels and
predictions, and windows: when it runs the join, everything it stored is flushed, and no other
process rewrites those windows meanwhile. A shard that moves to another process takes its
schedule with it: the schedule's progress (:class:`~drifthouse.app.merger.LateJoinMark`) goes
with the merger's commit, so a merger that restarts neither looks at everything again nor waits
past a slot its predecessor had not run. No process is singled out, and mergers scale as before.

A run's result depends only on what is stored (a window is recomputed from its stored panes and
*all* its late pairs), never on when the run happens: :class:`LateJoinSchedule` only decides
how far back a run looks for new rows. A schedule's first run looks at everything; each later
run at what was stored since the previous run began (the store's clock, less
:data:`MARGIN_S`), and never past the first pair of a window that had to wait.
``drifthouse labels join --every`` runs the same schedule in a loop of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from drifthouse.app.merge_loop import MergeLoop, Merger, MergeShards
from drifthouse.app.merger import LateJoinMark
from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.errors import StoreError
from drifthouse.kafka.shards import shard_of
from drifthouse.logs import get_logger
from drifthouse.sinks import late_labels as store
from drifthouse.sinks.base import Sink
from drifthouse.stream.labels.late import LateJoinReport, join_late_labels, late_join_steps

__all__ = [
    "MARGIN_S",
    "LateJoinSchedule",
    "ShardLateJoins",
    "join_at_end",
    "next_slot",
    "shard_models",
]

log = get_logger("late_join")

#: Seconds a run reaches back before the previous run's start: rows whose insert began before
#: that start but became visible after it.
MARGIN_S = 60
#: Seconds before a run that failed (the store away) is tried again.
RETRY_S = 60


def next_slot(now_ms: int, every_ms: int) -> int:
    """The first whole multiple of ``every_ms`` after ``now_ms`` (epoch milliseconds)."""
    return (now_ms // every_ms + 1) * every_ms


def shard_models(shard: int, shards: int) -> Callable[[str], bool]:
    """Whether a model is merge shard ``shard``'s (of ``shards``)."""
    return lambda model: shard_of(model, shards) == shard


@dataclass
class LateJoinSchedule:
    """When the late join runs next and how far back it looks (see the module docstring).

    Example
    -------
    >>> schedule = LateJoinSchedule(every_ms=3_600_000)
    >>> schedule.due(0), schedule.since_s
    (True, 0)
    """

    every_ms: int
    #: The next run reads the rows stored since then (store clock, epoch seconds; 0: all).
    since_s: int = 0
    #: When the next run is due (epoch ms; ``None``: now).
    next_ms: int | None = None
    runs: int = 0
    last: LateJoinReport | None = None

    def due(self, now_ms: int) -> bool:
        return self.next_ms is None or now_ms >= self.next_ms

    def run(
        self,
        client: Client,
        database: str,
        config: Config,
        profiles: Mapping[str, Profile],
        sink: Sink,
        *,
        run_id: str = "live",
        owns: Callable[[str], bool] | None = None,
        now_ms: int | None = None,
    ) -> LateJoinReport:
        """One run: join, rewrite, flush ``sink``; then the next slot and how far back it
        looks. An error leaves the schedule as it was (the next run looks as far back)."""
        steps = self.steps(
            client, database, config, profiles, sink, run_id=run_id, owns=owns,
            now=(lambda: now_ms) if now_ms is not None else None,
        )  # fmt: skip
        for _ in steps:
            pass
        assert self.last is not None
        return self.last

    def steps(
        self,
        client: Client,
        database: str,
        config: Config,
        profiles: Mapping[str, Profile],
        sink: Sink,
        *,
        run_id: str = "live",
        owns: Callable[[str], bool] | None = None,
        now: Callable[[], int] | None = None,
    ) -> Iterator[None]:
        """:meth:`run` a chunk at a time (see
        :func:`~drifthouse.stream.labels.late.late_join_steps`); the schedule moves on only
        once the last step is done. ``now``: the wall clock (epoch ms) when it ends."""
        started_s = store.now_s(client)
        report = LateJoinReport()
        yield from late_join_steps(
            client, database, config, profiles, sink, report, since_s=self.since_s,
            run_id=run_id, owns=owns,
        )  # fmt: skip
        since = max(0, started_s - MARGIN_S)
        if report.waiting_since_s is not None:
            since = min(since, report.waiting_since_s)
        self.since_s = since
        self.next_ms = next_slot(
            now() if now is not None else int(time.time() * 1000), self.every_ms
        )
        self.runs += 1
        self.last = report


def join_at_end(
    config: Config, sink: Sink, profiles: Mapping[str, Profile], run_id: str
) -> LateJoinReport | None:
    """The late join of a bounded run (a replay) once at its end, over everything it stored
    under ``run_id``, when ``metrics.late_labels`` is on and the sink is ClickHouse's."""
    client = getattr(sink, "client", None)
    if not config.metrics.late_labels or client is None:
        return None
    sink.flush()  # the stream's last panes, labels and predictions first
    return join_late_labels(client, config.store.database, config, profiles, sink, run_id=run_id)


class ShardLateJoins:
    """The scheduled late join of every merge shard this worker holds.

    :meth:`tick` (the worker's heartbeat, every second) starts, in a task of its own, the run
    of each shard whose slot has come; a merger's first run is at the first slot after it
    opened. ``clock`` is the wall clock (seconds), replaceable in tests.
    """

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.every_ms = config.metrics.late_labels_every
        self.enabled = config.metrics.late_labels and self.every_ms > 0
        self.clock = clock
        self.schedules: dict[int, LateJoinSchedule] = {}
        self._mergers: dict[int, Merger] = {}
        self._task: asyncio.Task[None] | None = None

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def tick(self, merge: MergeShards) -> None:
        """Start the runs that are due (unless the previous ones still run)."""
        if not self.enabled or (self._task is not None and not self._task.done()):
            return
        now = self._now_ms()
        due: list[tuple[int, MergeLoop, Merger]] = []
        for shard, loop in sorted(merge.loops.items()):
            merger = loop.merger
            if merger is None:
                continue
            if self._mergers.get(shard) is not merger:
                # A merger opened (again): it resumes the schedule its commit carries, or
                # starts one at the next slot.
                self._mergers[shard] = merger
                mark = merger.side.late_join
                self.schedules[shard] = (
                    LateJoinSchedule(self.every_ms, since_s=mark.since_s, next_ms=mark.next_ms)
                    if mark is not None
                    else LateJoinSchedule(self.every_ms, next_ms=next_slot(now, self.every_ms))
                )
            if self.schedules[shard].due(now):
                due.append((shard, loop, merger))
        if due:
            self._task = asyncio.create_task(self._run(due))

    async def wait(self) -> None:
        """Wait for the runs started last (for a clean stop, and tests)."""
        if self._task is not None:
            await self._task

    async def _run(self, due: list[tuple[int, MergeLoop, Merger]]) -> None:
        executor = asyncio.get_running_loop().run_in_executor
        for shard, loop, merger in due:
            schedule = self.schedules[shard]
            runs = schedule.runs
            steps = self._steps(shard, loop, merger)
            began = time.monotonic()
            # A chunk at a time under the shard's lock: its batches (and a rebalance) wait
            # for one chunk at most, never for a whole run.
            while True:
                async with loop.lock:
                    if loop.merger is not merger:
                        break  # closed meanwhile (a rebalance): the next owner runs it
                    if not await executor(None, self._step, shard, steps):
                        break
            report = schedule.last
            if schedule.runs > runs:
                # Committed with the merger's next checkpoint (see LateJoinMark).
                merger.side.late_join = LateJoinMark(schedule.since_s, schedule.next_ms)
            if report is not None and schedule.runs > runs:
                log.info(
                    "late_join.done", shard=shard, models=report.models, pairs=report.pairs,
                    windows=report.windows, rows=report.rows, waiting=report.waiting,
                    seconds=round(time.monotonic() - began, 3), next_ms=schedule.next_ms,
                )  # fmt: skip

    def _steps(self, shard: int, loop: MergeLoop, merger: Merger) -> Iterator[None]:
        """The steps of one shard's run (none when it cannot run now)."""
        schedule = self.schedules[shard]
        client = getattr(merger.sink, "client", None)
        if client is None:
            return iter(())  # a store without ClickHouse (tests' memory sink): nothing to join
        if merger.writes.pending_batches:
            # Rows still spooled (the store was away): the panes they hold come first.
            self._defer(shard, "rows still spooled")
            return iter(())
        config = loop.parts.config
        return schedule.steps(
            client, config.store.database, config, loop.parts.profiles, merger.sink,
            run_id=merger.side.stage.run_id,
            owns=shard_models(shard, config.kafka.partials_partitions), now=self._now_ms,
        )  # fmt: skip

    def _step(self, shard: int, steps: Iterator[None]) -> bool:
        """One step (in a worker thread); ``False`` when the run is over or failed."""
        try:
            next(steps)
        except StopIteration:
            return False
        except StoreError as exc:
            # The store is away: the same run is tried again shortly, looking as far back.
            self._defer(shard, str(exc))
            return False
        return True

    def _defer(self, shard: int, why: str) -> None:
        self.schedules[shard].next_ms = self._now_ms() + RETRY_S * 1000
        log.warning("late_join.deferred", shard=shard, error=why, retry_s=RETRY_S)
