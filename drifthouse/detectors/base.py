"""The one protocol every sketch follows, the result type, and state serialisation.

A sketch is a small object built once (from a reference profile) that knows the *layout* of a
state: bin edges, category lists, bucket ranges. The state itself is a plain value of numpy
arrays, so it can be merged, shipped between workers as bytes and restored after a restart.
Every sketch subclasses :class:`Sketch` and offers, with one signature shape::

    empty() -> S
    update(S, batch) -> S               # may mutate S in place; always returns it
    merge(S, S) -> S                    # associative; commutative on counts; empty() is the identity
    evaluate(S, Context) -> list[Result]

``batch`` is one value whose type each sketch names (an array, or a small frozen record of
arrays); :class:`Context` carries what a window's evaluation needs beside its state: the
reference state compared with (default: the sketch's own), the window's length, the number of
predictions. ``tests/detectors/test_protocol.py`` finds every sketch and checks the laws below.

``update`` advances every float accumulator one event at a time, in event order, so the way a
stream is cut into micro-batches never changes a digit. ``merge`` (across partitions and panes,
in an order the caller fixes) uses Chan et al.'s pairwise formula for mean and variance.
"""

from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import msgspec
import numpy as np

from drifthouse.errors import SketchError

__all__ = [
    "MISSING",
    "NO_CONTEXT",
    "PRESENT",
    "TYPE_ERROR",
    "Context",
    "Result",
    "Sketch",
    "State",
    "layout_digest",
]

S = TypeVar("S", bound="State")
#: A sketch's state type (not always a :class:`State`: composites hold several).
T = TypeVar("T")
#: A sketch's batch type.
B = TypeVar("B", contravariant=True)

# Status codes of numeric values (NumericBlock's ``status``, Columns' ``status``, the kernels).
PRESENT = 0
MISSING = 1
TYPE_ERROR = 2


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """One metric of one feature (``feature == ''`` for model-level metrics).

    ``value`` is always finite. ``p_value`` is set for tests (``ks``, ``chi2``) and ``None``
    otherwise. ``n_ref`` and ``n_cur`` are the reference and window counts the value rests on.
    ``bin`` names the bin or category an attribution row is about (``[420.0, 480.0)``, ``BR``;
    docs/statistics.md "Drift attribution"), ``''`` for every other metric.
    """

    feature: str
    metric: str
    value: float
    p_value: float | None
    n_ref: int
    n_cur: int
    bin: str = ""


class _Array(msgspec.Struct, array_like=True):
    dtype: str
    shape: list[int]
    data: bytes


class _Envelope(msgspec.Struct):
    kind: str
    layout: str
    arrays: dict[str, _Array]


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Envelope)


@dataclasses.dataclass(frozen=True, eq=False)
class State:
    """Base of sketch states: a frozen record of numpy arrays plus a layout digest.

    The arrays are mutable (``update`` writes into them); the record is not. ``layout`` is a
    short digest of the sketch's edges and categories: states of different layouts never merge.
    """

    layout: str

    def arrays(self) -> dict[str, np.ndarray]:
        """The state's arrays by field name."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "layout"
        }

    def copy(self: S) -> S:
        """A deep copy (``update`` mutates in place; copy first to keep the original)."""
        return type(self)(layout=self.layout, **{k: v.copy() for k, v in self.arrays().items()})

    def equals(self, other: object) -> bool:
        """Bitwise equality of every array (floats compared by their bits)."""
        if type(other) is not type(self):
            return False
        assert isinstance(other, State)
        if other.layout != self.layout:
            return False
        mine, theirs = self.arrays(), other.arrays()
        return all(
            mine[k].dtype == theirs[k].dtype
            and mine[k].shape == theirs[k].shape
            and mine[k].tobytes() == theirs[k].tobytes()
            for k in mine
        )

    def to_bytes(self) -> bytes:
        """Serialise exactly (msgpack of raw little-endian array bytes)."""
        arrays = {
            k: _Array(
                v.dtype.newbyteorder("<").str,
                list(v.shape),
                v.astype(v.dtype.newbyteorder("<")).tobytes(),
            )
            for k, v in self.arrays().items()
        }
        return _ENCODER.encode(_Envelope(type(self).__name__, self.layout, arrays))

    @classmethod
    def from_bytes(cls: type[S], data: bytes) -> S:
        """Restore a state written by :meth:`to_bytes`; raise :class:`SketchError` if it is not one."""
        try:
            env = _DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise SketchError(f"not a serialised {cls.__name__}: {exc}") from exc
        if env.kind != cls.__name__:
            raise SketchError(f"expected a serialised {cls.__name__} (got a {env.kind})")
        names = {f.name for f in dataclasses.fields(cls)} - {"layout"}
        # An array added to a state later has a default: older bytes load with it.
        optional = {
            f.name for f in dataclasses.fields(cls) if f.default_factory is not dataclasses.MISSING
        }
        if not names - optional <= set(env.arrays) <= names:
            raise SketchError(
                f"serialised {cls.__name__} has fields {sorted(env.arrays)} (expected {sorted(names)})"
            )
        out: dict[str, Any] = {}
        for k, arr in env.arrays.items():
            a = np.frombuffer(arr.data, dtype=np.dtype(arr.dtype)).astype(
                np.dtype(arr.dtype).newbyteorder("=")
            )
            out[k] = a.reshape(arr.shape).copy()
        return cls(layout=env.layout, **out)


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """What :meth:`Sketch.evaluate` may need beside the window's state.

    ``reference``: the state the window is compared with, of the sketch's own state type
    (``None``: the sketch's own reference, when it has one; each sketch checks the type it
    gets); ``window_ms``: the window's length (``throughput_rps``); ``predictions``: the
    predictions of the window (``labels_coverage``).
    """

    reference: object = None
    window_ms: int = 0
    predictions: int = 0


NO_CONTEXT = Context()


def window_ms_of(kind: str, context: Context) -> int:
    """``context.window_ms``; raise :class:`SketchError` unless it is positive."""
    if context.window_ms <= 0:
        raise SketchError(
            f"{kind}.evaluate needs the window's length: pass Context(window_ms=...) "
            f"(got {context.window_ms})"
        )
    return context.window_ms


class Sketch(ABC, Generic[T, B]):
    """What every sketch offers (see the module docstring).

    Laws (checked for every subclass by ``tests/detectors/test_protocol.py``): ``empty()`` is
    the identity of ``merge``; ``merge`` is associative; updating panes apart and merging them
    equals one pass over the same batches.
    """

    __slots__ = ()

    @abstractmethod
    def empty(self) -> T:
        """A state holding nothing."""

    @abstractmethod
    def update(self, state: T, batch: B) -> T:
        """Add ``batch`` to ``state`` (in place where the state allows) and return it."""

    @abstractmethod
    def merge(self, a: T, b: T) -> T:
        """A state holding both."""

    @abstractmethod
    def evaluate(self, state: T, context: Context = NO_CONTEXT) -> list[Result]:
        """The metrics of a window's state."""


def layout_digest(*parts: object) -> str:
    """A short, stable digest of a sketch's layout (edges, categories, bucket ranges)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str(part.dtype).encode())
            h.update(str(part.shape).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, Sequence) and not isinstance(part, str | bytes):
            h.update(repr(list(part)).encode())
        else:
            h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def check_same_layout(kind: str, layout: str, *states: State) -> None:
    """Raise :class:`SketchError` unless every state has the sketch's layout."""
    for s in states:
        if s.layout != layout:
            raise SketchError(
                f"{kind}: state has layout {s.layout!r} but this sketch has {layout!r}; "
                "states built from different reference profiles cannot be combined"
            )


def reference_for(
    kind: str, layout: str, state_type: type[S], own: S, context: Context, state: S
) -> S:
    """What a sketch compares ``state`` with: ``context.reference``, else its own reference
    ``own``; a :class:`SketchError` unless it is a ``state_type`` of the sketch's layout."""
    reference = own if context.reference is None else context.reference
    if not isinstance(reference, state_type):
        raise SketchError(
            f"{kind} compares with a {state_type.__name__} (got {type(reference).__name__})"
        )
    check_same_layout(kind, layout, reference, state)
    return reference
