"""Messages between workers and the merger, on the internal partials topic.

Workers publish each closed :class:`~drifthouse.stream.stage.Partial` window of their source
partitions, and after every batch the partition's watermark; a merger reads a partition of the
topic in order and merges a window once every source partition's watermark has passed its end.
Each partition is a merge shard (:mod:`drifthouse.kafka.shards`): a model's messages go to its
shard's partition (:class:`Outgoing`), every watermark to every partition. A worker that restarts publishes the same partials
again, byte for byte; the merger keeps one per source partition and window.

What the merger needs beside the partials comes the same way, so that its whole input is one
ordered log: the on-time predictions the label join holds (:class:`RecordsMessage`), and the
decoded-and-checked labels and metric events read from their own topics
(:class:`SideEventsMessage`). Each carries the offsets it came from, so a merger resuming from a
snapshot skips what it has already taken when a restarted worker sends it again.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from drifthouse.config import KafkaConfig
from drifthouse.detectors.model_sketch import ModelState
from drifthouse.errors import SourceError
from drifthouse.events import EventDecoder, LabelEvent, MetricEvent
from drifthouse.rows import PredictionRow
from drifthouse.stream.labels import PredictionRecord
from drifthouse.stream.stage import Partial

__all__ = [
    "Outgoing",
    "PartialMessage",
    "PredictionsMessage",
    "RecordsMessage",
    "SideEventsMessage",
    "WatermarkMessage",
    "decode",
    "encode_partial",
    "encode_predictions",
    "encode_records",
    "encode_side_events",
    "encode_watermark",
    "side_decoders",
]


class Outgoing(NamedTuple):
    """A message for the partials topic, with the partition (merge shard) it goes to."""

    partition: int
    key: bytes
    value: bytes


class PartialMessage(msgspec.Struct, tag="partial", array_like=True):
    spec: str
    spec_index: int
    start: int
    end: int
    model: str
    model_version: str
    source_partition: int
    state: bytes

    def to_partial(self) -> Partial:
        return Partial(
            self.spec_index,
            self.start,
            self.end,
            (self.model, self.model_version),
            self.source_partition,
            ModelState.from_bytes(self.state),
        )


class PredictionsMessage(msgspec.Struct, tag="predictions", array_like=True):
    """Sampled prediction-log rows, written by the merger (the process that holds the store)."""

    rows: list[PredictionRow]


class WatermarkMessage(msgspec.Struct, tag="watermark", array_like=True):
    source_partition: int
    watermark: int
    idle: bool = False


class RecordsMessage(msgspec.Struct, tag="records", array_like=True):
    """On-time predictions of a source partition for the label join, with their offsets."""

    source_partition: int
    offsets: list[int]
    records: list[PredictionRecord]


class SideEventsMessage(msgspec.Struct, tag="side", array_like=True):
    """Valid label (``kind='labels'``) or metric events (``'metrics'``) of one partition of
    their topic, raw, with their offsets."""

    kind: str
    partition: int
    offsets: list[int]
    values: list[bytes]


Wire = PartialMessage | WatermarkMessage | PredictionsMessage | RecordsMessage | SideEventsMessage
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(Wire).decode


def encode_partial(p: Partial, spec_name: str) -> bytes:
    return _ENCODE(
        PartialMessage(
            spec_name,
            p.spec_index,
            p.start,
            p.end,
            p.key[0],
            p.key[1],
            p.partition,
            p.state.to_bytes(),
        )
    )


def encode_watermark(partition: int, watermark: int, *, idle: bool = False) -> bytes:
    return _ENCODE(WatermarkMessage(partition, watermark, idle))


def encode_predictions(rows: list[PredictionRow]) -> bytes:
    return _ENCODE(PredictionsMessage(rows))


def side_decoders(kafka: KafkaConfig) -> dict[str, EventDecoder[Any]]:
    """The decoders of the labels (``'labels'``) and metrics (``'metrics'``) topics, with the
    configured size bounds: one definition for the pipeline, the forwarding worker and the
    merger."""
    limits = {"max_bytes": kafka.max_message_bytes, "max_label_bytes": kafka.max_label_bytes}
    return {
        "labels": EventDecoder(LabelEvent, **limits),
        "metrics": EventDecoder(MetricEvent, **limits),
    }


def encode_records(partition: int, offsets: list[int], records: list[PredictionRecord]) -> bytes:
    return _ENCODE(RecordsMessage(partition, offsets, records))


def encode_side_events(kind: str, partition: int, offsets: list[int], values: list[bytes]) -> bytes:
    return _ENCODE(SideEventsMessage(kind, partition, offsets, values))


def decode(data: bytes) -> Wire:
    try:
        msg: Wire = _DECODE(data)
    except msgspec.DecodeError as exc:
        raise SourceError(
            f"not a drifthouse partials message ({exc}); is another program writing to the partials topic?"
        ) from exc
    return msg
