"""Routing to merge shards, without Kafka: each partial, label-join record, prediction-log row,
label and metric event goes to the shard partition of its model; every watermark and idle mark
to every shard; mergers of the shards, each alone, write together the rows of one merger; each
shard's merge loop commits its own partition and keeps its own snapshots."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import pytest

from drifthouse.app.assembly import RunParts
from drifthouse.app.merge_loop import MergeLoop
from drifthouse.app.merger import MergeSide
from drifthouse.app.side_forwarder import SideForwarder
from drifthouse.app.source_loop import SourceLoop
from drifthouse.app.source_side import SourceSide
from drifthouse.config import Config
from drifthouse.kafka.partials import (
    PartialMessage,
    PredictionsMessage,
    RecordsMessage,
    SideEventsMessage,
    WatermarkMessage,
    decode,
    encode_side_events,
    side_decoders,
)
from drifthouse.kafka.shards import shard_of
from drifthouse.simulate import simulate
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message
from tests.app.partials import CONFIG, PARTITIONS

SHARDS = 3
SHARDED = CONFIG.model_copy(
    update={"kafka": CONFIG.kafka.model_copy(update={"partials_partitions": SHARDS})}
)
# With the prediction log on, its rows go to the merger too.
LOGGED = SHARDED.model_copy(
    update={"models": {"*": SHARDED.model("*").model_copy(update={"sample_rate": 1.0})}}
)


def _messages(records: Any) -> list[Message]:
    offsets = [0] * PARTITIONS
    out = []
    for i, r in enumerate(records):
        p = i % PARTITIONS
        out.append(Message(r.value, p, offsets[p], "predictions", r.key))
        offsets[p] += 1
    return out


def _source(config: Config, small_stream: Any) -> SourceSide:
    parts = RunParts.of(config, small_stream.profiles)
    source = SourceSide(parts, MemoryDeadLetters(), prediction_log=parts.prediction_log())
    for p in range(PARTITIONS):
        source.open(p, None)
    return source


def test_partials_go_to_their_models_shard_and_watermarks_to_every_shard(
    small_stream: Any,
) -> None:
    source = _source(SHARDED, small_stream)
    out = source.process(_messages(small_stream.records[:3000]))
    marks: dict[int, list[int]] = defaultdict(list)  # source partition -> shards it reached
    partials = 0
    for o in out:
        assert 0 <= o.partition < SHARDS
        msg = decode(o.value)
        if isinstance(msg, PartialMessage):
            partials += 1
            assert o.partition == shard_of(msg.model, SHARDS)
            assert o.key == msg.model.encode()
        elif isinstance(msg, WatermarkMessage):
            marks[msg.source_partition].append(o.partition)
    assert partials > 0
    assert {m: sorted(s) for m, s in marks.items()} == {
        p: list(range(SHARDS)) for p in range(PARTITIONS)
    }
    # Each shard sees a source partition's watermark after that partition's partials.
    for shard in range(SHARDS):
        kinds = [type(decode(o.value)) for o in out if o.partition == shard]
        assert kinds[-1] is WatermarkMessage


def test_records_and_prediction_rows_go_to_their_models_shard(small_stream: Any) -> None:
    source = _source(LOGGED, small_stream)
    out = source.process(_messages(small_stream.records[:3000]))
    seen: dict[str, set[int]] = defaultdict(set)
    for o in out:
        msg = decode(o.value)
        if isinstance(msg, RecordsMessage):
            assert msg.records
            assert len(msg.offsets) == len(msg.records)
            assert msg.offsets == sorted(msg.offsets)
            models = {r.model for r in msg.records}
            assert [shard_of(m, SHARDS) for m in models] == [o.partition] * len(models)
            seen["records"] |= models
        elif isinstance(msg, PredictionsMessage):
            models = {r.model for r in msg.rows}
            assert [shard_of(m, SHARDS) for m in models] == [o.partition] * len(models)
            seen["rows"] |= models
    assert seen["records"] == seen["rows"] == {"fraud", "eta"}


def test_labels_and_metric_events_go_to_their_models_shard() -> None:
    sent: list[tuple[bytes, bytes, int]] = []

    async def send(key: bytes, value: bytes, partition: int) -> None:
        sent.append((key, value, partition))

    async def flush() -> None:
        pass

    async def commit(offsets: dict[tuple[str, int], int]) -> bool:
        return True

    forwarder = SideForwarder(
        {"labels": "labels", "metrics": "metrics"}, side_decoders(SHARDED.kafka), {},
        send=send, flush=flush, commit=commit, publish_lock=asyncio.Lock(), shards=SHARDS,
    )  # fmt: skip
    models = ["fraud", "eta", "eta_a", "fraud", "eta_a", "eta"]  # shards 1, 0, 2, 1, 2, 0
    labels = [
        Message(
            json.dumps({"event_id": f"e{i}", "model": m, "label": 1, "ts": 1_700_000_000_000 + i})
            .encode(), 0, 10 + i, "labels",
        )
        for i, m in enumerate(models)
    ]  # fmt: skip
    metrics = [
        Message(
            json.dumps({"model": m, "ts": 1_700_000_000_000, "metrics": {"cpu": 0.5}}).encode(),
            1, 20 + i, "metrics",
        )
        for i, m in enumerate(models)
    ]  # fmt: skip
    asyncio.run(forwarder.forward({("labels", 0): labels, ("metrics", 1): metrics}))
    got: dict[tuple[str, int], list[int]] = {}
    for _, value, partition in sent:
        msg = decode(value)
        assert isinstance(msg, SideEventsMessage)
        for raw in msg.values:
            assert shard_of(json.loads(raw)["model"], SHARDS) == partition
        got[(msg.kind, partition)] = msg.offsets
    assert got == {
        ("labels", 0): [11, 15], ("labels", 1): [10, 13], ("labels", 2): [12, 14],
        ("metrics", 0): [21, 25], ("metrics", 1): [20, 23], ("metrics", 2): [22, 24],
    }  # fmt: skip


class _Reader:
    def __init__(self, high: dict[int, int]) -> None:
        self.high = high

    def highwater(self, partition: int) -> int | None:
        return self.high.get(partition)


class _Kafka:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes, int]] = []

    async def send(self, key: bytes, value: bytes, partition: int) -> None:
        self.sent.append((key, value, partition))

    async def flush(self) -> None:
        pass


def test_idle_marks_go_to_every_shard(small_stream: Any) -> None:
    source = _source(SHARDED, small_stream)
    source.process(_messages(small_stream.records[:100]))
    kafka = _Kafka()
    reader = _Reader({p: s.next_offset for p, s in source.stages.items()})
    loop = SourceLoop(
        source, reader, kafka, MemoryDeadLetters(), publish_lock=asyncio.Lock(),  # type: ignore[arg-type]
        idle_after_s=0.0, on_error=lambda part, exc: None,
    )  # fmt: skip
    asyncio.run(loop.tick())
    marks = sorted((decode(v).source_partition, p) for _, v, p in kafka.sent)  # type: ignore[union-attr]
    assert marks == [(sp, shard) for sp in range(PARTITIONS) for shard in range(SHARDS)]
    assert all(
        isinstance(m, WatermarkMessage) and m.idle for m in (decode(v) for _, v, _ in kafka.sent)
    )


def _sharded_log(small_stream: Any, config: Config) -> dict[int, list[bytes]]:
    """Each shard partition's log: the source side's output, labels forwarded beside."""
    source = _source(config, small_stream)
    shards = config.kafka.partials_partitions
    msgs = _messages(small_stream.records)
    labels = [r for r in simulate(small_stream.scenario, seed=3) if r.topic == "labels"]
    out: dict[int, list[bytes]] = defaultdict(list)
    label_at = 0
    for lo in range(0, len(msgs), 500):
        for o in source.process(msgs[lo : lo + 500]):
            out[o.partition].append(o.value)
        upto = min(len(labels), label_at + 200)
        by_shard: dict[int, list[int]] = defaultdict(list)
        for i in range(label_at, upto):
            by_shard[shard_of(json.loads(labels[i].value)["model"], shards)].append(i)
        for shard, offsets in by_shard.items():
            values = [labels[i].value for i in offsets]
            out[shard].append(encode_side_events("labels", 0, offsets, values))
        label_at = upto
    ahead = max(r.ts_ms for r in small_stream.records) + 3 * 3_600_000
    event = json.dumps({"model": "fraud", "ts": ahead, "features": {}}).encode()
    ends = {p: s.next_offset for p, s in source.stages.items()}
    for o in source.process([Message(event, p, ends[p], "predictions") for p in ends]):
        out[o.partition].append(o.value)
    return out


def _rows(config: Config, small_stream: Any, log: list[bytes]) -> dict[Any, Any]:
    sink = MemorySink()
    parts = RunParts.of(config, small_stream.profiles)
    side = MergeSide(parts, sink, list(range(PARTITIONS)))
    side.process(list(enumerate(log)))
    side.stage.emit(quiet=True)
    sink.flush()
    return {r.key()[:-1]: (r.value, r.n) for r in sink.rows("metrics")}


def test_the_shards_merged_apart_write_the_rows_of_one_merger(small_stream: Any) -> None:
    one = _sharded_log(small_stream, CONFIG)
    assert set(one) == {0}
    want = _rows(CONFIG, small_stream, one[0])
    assert any(k[-1] == "accuracy" for k in want)
    logs = _sharded_log(small_stream, SHARDED)
    got: dict[Any, Any] = {}
    for shard in range(SHARDS):
        rows = _rows(SHARDED, small_stream, logs.get(shard, []))
        assert not rows.keys() & got.keys(), "a row written by two shards"
        got.update(rows)
    assert got.keys() == want.keys()
    assert [k for k in want if got[k] != want[k]] == []


class _Partials:
    """One shard's partials partition: its commit, its commits."""

    def __init__(self) -> None:
        self.commits: list[tuple[int, str]] = []

    async def committed(self) -> tuple[int, str] | None:
        return self.commits[-1] if self.commits else None

    async def beginning(self) -> int:
        return 0

    async def end(self) -> int:
        return 0

    async def seek(self, offset: int) -> None:
        raise AssertionError("read in sequence")

    async def commit(self, offset: int, metadata: str) -> bool:
        self.commits.append((offset, metadata))
        return True


def test_each_shards_merge_loop_commits_its_own_partition(small_stream: Any) -> None:
    logs = _sharded_log(small_stream, SHARDED)
    parts = RunParts.of(SHARDED, small_stream.profiles)
    partials = {s: _Partials() for s in logs}
    sinks = {s: MemorySink() for s in logs}
    loops = {
        s: MergeLoop(
            parts, range(PARTITIONS), partials[s], open_sink=lambda s=s: sinks[s],
            on_error=lambda part, exc: pytest.fail(f"{part}: {exc!r}"), shard=s,
        )
        for s in logs
    }  # fmt: skip

    async def run() -> None:
        for s, log in logs.items():
            await loops[s].take(lambda log=log: list(enumerate(log)))

    asyncio.run(run())
    for s, log in logs.items():
        offset, metadata = partials[s].commits[-1]
        assert offset <= len(log)
        assert loops[s].shard == s
        assert json.loads(metadata)["watermarks"] == {
            str(p): loops[s].merger.side.stage.watermarks()[p]  # type: ignore[union-attr]
            for p in range(PARTITIONS)
        }


@pytest.mark.parametrize(
    ("update", "role", "match"),
    [
        pytest.param({"partials_partitions": 3}, "all", "admits one process", id="embedded-3"),
        pytest.param({}, "both", "--role must be one of all, source, merger", id="bad-role"),
    ],
)
def test_what_cannot_run_is_refused_before_kafka(
    update: dict[str, Any], role: str, match: str
) -> None:
    from drifthouse.app.worker import build_app
    from drifthouse.errors import ConfigError

    # An unreachable broker: the refusal comes first.
    kafka = CONFIG.kafka.model_copy(update={"bootstrap": "127.0.0.1:9", **update})
    config = CONFIG.model_copy(update={"kafka": kafka})
    with pytest.raises(ConfigError, match=match) as caught:
        build_app(
            config, profiles={}, open_sink=lambda shard: MemorySink(),
            dead_letters=MemoryDeadLetters(), role=role,  # type: ignore[arg-type]
        )  # fmt: skip
    if update:
        assert caught.value.problems[0][0] == "kafka.partials_partitions"
        assert "store.dsn" in str(caught.value)


def test_one_shard_on_the_embedded_store_and_three_on_a_server_are_accepted() -> None:
    from drifthouse.app.worker import check_shards

    check_shards(CONFIG, "all")
    server = Config.model_validate(
        {"kafka": {"partials_partitions": SHARDS}, "store": {"dsn": "http://ch:8123/d"}}
    )
    for role in ("all", "source", "merger"):
        check_shards(server, role)


def test_a_shard_taken_away_is_closed_and_the_others_go_on(small_stream: Any) -> None:
    from drifthouse.app.merge_loop import MergeShards

    logs = _sharded_log(small_stream, SHARDED)
    parts = RunParts.of(SHARDED, small_stream.profiles)
    sinks = {s: MemorySink() for s in logs}
    made: list[int] = []

    def make(shard: int) -> MergeLoop:
        made.append(shard)
        return MergeLoop(
            parts, range(PARTITIONS), _Partials(), open_sink=lambda: sinks[shard],
            on_error=lambda part, exc: pytest.fail(f"{part}: {exc!r}"), shard=shard,
        )  # fmt: skip

    shards = MergeShards(make)

    async def run() -> None:
        for s, log in sorted(logs.items()):
            half = len(log) // 2
            await shards.take(s, lambda log=log, half=half: list(enumerate(log[:half])))
        assert sorted(shards.mergers) == sorted(logs)
        await shards.close([1, 7])  # a rebalance took shard 1 (and 7, never held) away
        assert sorted(shards.mergers) == [s for s in sorted(logs) if s != 1]
        assert sinks[1].closed
        assert not any(sinks[s].closed for s in logs if s != 1)
        for s, log in sorted(logs.items()):  # shard 1 comes back: a new merge loop
            half = len(log) // 2
            await shards.take(s, lambda log=log, half=half: list(enumerate(log[half:], half)))
        await shards.close()
        assert shards.mergers == {}

    asyncio.run(run())
    assert made == [*sorted(logs), 1]
    assert all(sink.closed for sink in sinks.values())
