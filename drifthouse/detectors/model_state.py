"""One model's pane state: its detectors' states side by side, segments, and the wire format.

:class:`ModelState` is what :class:`~drifthouse.detectors.model_sketch.ModelSketch` updates,
merges and evaluates; :class:`SegmentState` is the serving state of one segment value. Both
serialise exactly (``to_bytes``/``from_bytes``) for partial-window messages between workers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import msgspec
import numpy as np

from drifthouse.detectors.base import State
from drifthouse.detectors.categorical import CategoricalState
from drifthouse.detectors.cbpe import CbpeState
from drifthouse.detectors.dle import DleState
from drifthouse.detectors.embedding import EmbeddingState
from drifthouse.detectors.importance import ImportanceState
from drifthouse.detectors.numeric import NumericState
from drifthouse.detectors.pca import ReconstructionState
from drifthouse.detectors.quantiles import QuantileState
from drifthouse.detectors.raw_panes import RawTree, decode_tree, encode_tree, same_tree
from drifthouse.detectors.status import StatusState
from drifthouse.errors import SketchError

__all__ = ["EVENTS", "INVALID", "LATE", "ModelState", "SegmentKey", "SegmentState"]

SegmentKey = tuple[str, str]  # (attribute, value)


class _WireSegment(msgspec.Struct, array_like=True):
    attribute: str
    value: str
    events: int
    latency: bytes
    status: bytes
    prediction: bytes | None
    # int64 counts on every feature's PSI bins (drift attribution on), little-endian.
    features: bytes | None = None


class _WireState(msgspec.Struct, array_like=True):
    numeric: bytes
    categorical: bytes
    latency: bytes
    status: bytes
    prediction: bytes | None
    counters: list[int]
    prediction_kind: str = "numeric"
    importance: bytes | None = None
    # zlib of the _WireSegment list (a latency sketch is 18 KB raw, mostly zeros: ~0.4 KB
    # compressed); absent in states written before segments.
    segments: bytes | None = None
    # The raw pane tree of a model whose automatic reference is not built yet.
    raw: bytes | None = None
    # Performance estimation's state (a profile with a calibration).
    cbpe: bytes | None = None
    # The embedding features' state (a profile with embeddings).
    embedding: bytes | None = None
    # Multivariate drift's state (a profile with a multivariate part).
    multivariate: bytes | None = None
    # Direct loss estimation's state (a regression profile with a loss model).
    dle: bytes | None = None


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(_WireState).decode
_DECODE_SEGMENTS = msgspec.msgpack.Decoder(list[_WireSegment]).decode

# Counter slots of ModelState.counters.
EVENTS, LATE, INVALID = 0, 1, 2


def _decode_prediction(kind: str, data: bytes | None) -> NumericState | CategoricalState | None:
    if data is None:
        return None
    return (CategoricalState if kind == "categorical" else NumericState).from_bytes(data)


def _same(
    a: NumericState | CategoricalState | None, b: NumericState | CategoricalState | None
) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.equals(b)


@dataclass(frozen=True, eq=False)
class SegmentState:
    """The serving state of one segment value in one pane: events, latency, status codes and
    the prediction (``None`` for a model without a profiled prediction)."""

    counters: np.ndarray  # int64 [events]
    latency: QuantileState
    status: StatusState
    prediction: NumericState | CategoricalState | None
    # Counts on every feature's PSI bins (drifthouse.detectors.segment_features), or None.
    features: np.ndarray | None = None

    @property
    def events(self) -> int:
        return int(self.counters[EVENTS])

    def equals(self, other: SegmentState) -> bool:
        """Bitwise equality of every part."""
        return (
            bool(np.array_equal(self.counters, other.counters))
            and self.latency.equals(other.latency)
            and self.status.equals(other.status)
            and _same(self.prediction, other.prediction)
            and (
                other.features is None
                if self.features is None
                else other.features is not None
                and bool(np.array_equal(self.features, other.features))
            )
        )


@dataclass(frozen=True, eq=False)
class ModelState:
    """One model's pane: the states of its detectors plus event counters."""

    numeric: NumericState
    categorical: CategoricalState
    latency: QuantileState
    status: StatusState
    prediction: NumericState | CategoricalState | None
    counters: np.ndarray  # int64 [events, late_events, invalid_events]
    importance: ImportanceState | None = None
    # Per segment value, in the order values were first seen (or merged: sorted).
    segments: dict[SegmentKey, SegmentState] = field(default_factory=dict)
    # The pane's events, kept while the model's automatic reference is not built (see
    # drifthouse.detectors.raw_panes); None otherwise.
    raw: RawTree | None = None
    # Performance estimation (drifthouse.detectors.cbpe), for a profile with a calibration.
    cbpe: CbpeState | None = None
    # Embedding features (drifthouse.detectors.embedding), for a profile with embeddings.
    embedding: EmbeddingState | None = None
    # Multivariate drift (drifthouse.detectors.multivariate), for a profile with a PCA.
    multivariate: ReconstructionState | None = None
    # Direct loss estimation (drifthouse.detectors.dle), for a profile with a loss model.
    dle: DleState | None = None

    def to_bytes(self) -> bytes:
        """Serialise exactly, for partial-window messages between workers."""
        return _ENCODE(
            _WireState(
                numeric=self.numeric.to_bytes(),
                categorical=self.categorical.to_bytes(),
                latency=self.latency.to_bytes(),
                status=self.status.to_bytes(),
                prediction=self.prediction.to_bytes() if self.prediction is not None else None,
                counters=[int(c) for c in self.counters],
                prediction_kind="categorical"
                if isinstance(self.prediction, CategoricalState)
                else "numeric",
                importance=self.importance.to_bytes() if self.importance is not None else None,
                segments=self._segments_bytes() if self.segments else None,
                raw=encode_tree(self.raw) if self.raw is not None else None,
                cbpe=self.cbpe.to_bytes() if self.cbpe is not None else None,
                embedding=self.embedding.to_bytes() if self.embedding is not None else None,
                multivariate=self.multivariate.to_bytes() if self.multivariate else None,
                dle=self.dle.to_bytes() if self.dle is not None else None,
            )
        )

    def _segments_bytes(self) -> bytes:
        wire = [
            _WireSegment(
                attribute=attr,
                value=value,
                events=seg.events,
                latency=seg.latency.to_bytes(),
                status=seg.status.to_bytes(),
                prediction=seg.prediction.to_bytes() if seg.prediction is not None else None,
                features=seg.features.astype("<i8").tobytes() if seg.features is not None else None,
            )
            for (attr, value), seg in self.segments.items()
        ]
        return zlib.compress(_ENCODE(wire), 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelState:
        """Restore a state written by :meth:`to_bytes` (raises ``SketchError`` on foreign bytes)."""
        try:
            wire = _DECODE(data)
            segments = _DECODE_SEGMENTS(zlib.decompress(wire.segments)) if wire.segments else []
        except (msgspec.DecodeError, zlib.error) as exc:
            raise SketchError(f"not a serialised model state: {exc}") from exc
        return cls(
            numeric=NumericState.from_bytes(wire.numeric),
            categorical=CategoricalState.from_bytes(wire.categorical),
            latency=QuantileState.from_bytes(wire.latency),
            status=StatusState.from_bytes(wire.status),
            prediction=_decode_prediction(wire.prediction_kind, wire.prediction),
            counters=np.asarray(wire.counters, dtype=np.int64),
            importance=ImportanceState.from_bytes(wire.importance)
            if wire.importance is not None
            else None,
            segments={
                (w.attribute, w.value): SegmentState(
                    counters=np.asarray([w.events], dtype=np.int64),
                    latency=QuantileState.from_bytes(w.latency),
                    status=StatusState.from_bytes(w.status),
                    prediction=_decode_prediction(wire.prediction_kind, w.prediction),
                    features=np.frombuffer(w.features, dtype="<i8").astype(np.int64)
                    if w.features is not None
                    else None,
                )
                for w in segments
            },
            raw=decode_tree(wire.raw) if wire.raw is not None else None,
            cbpe=CbpeState.from_bytes(wire.cbpe) if wire.cbpe is not None else None,
            embedding=EmbeddingState.from_bytes(wire.embedding)
            if wire.embedding is not None
            else None,
            multivariate=ReconstructionState.from_bytes(wire.multivariate)
            if wire.multivariate is not None
            else None,
            dle=DleState.from_bytes(wire.dle) if wire.dle is not None else None,
        )

    def equals(self, other: ModelState) -> bool:
        """Bitwise equality of every part."""
        same_pred = _same(self.prediction, other.prediction)
        same_segments = self.segments.keys() == other.segments.keys() and all(
            seg.equals(other.segments[key]) for key, seg in self.segments.items()
        )
        same_importance = (
            self.importance is None
            if other.importance is None
            else self.importance is not None and self.importance.equals(other.importance)
        )
        return (
            self.numeric.equals(other.numeric)
            and self.categorical.equals(other.categorical)
            and self.latency.equals(other.latency)
            and self.status.equals(other.status)
            and same_pred
            and same_importance
            and same_segments
            and same_tree(self.raw, other.raw)
            and (
                other.cbpe is None
                if self.cbpe is None
                else other.cbpe is not None and self.cbpe.equals(other.cbpe)
            )
            and _same_part(self.embedding, other.embedding)
            and _same_part(self.multivariate, other.multivariate)
            and _same_part(self.dle, other.dle)
            and bool(np.array_equal(self.counters, other.counters))
        )


def _same_part(a: State | None, b: State | None) -> bool:
    return b is None if a is None else b is not None and a.equals(b)
