"""Embedding features: quality and drift of fixed-length arrays of numbers, mergeable exactly
(docs/statistics.md, "Embedding features").

Per feature, the state counts the window's values by kind (valid, missing, not an array,
wrong length, not finite, zero vector) and sums two maps of each valid vector ``x``, in fixed
point (int64 units of ``2**-32``, as :mod:`drifthouse.detectors.cbpe` does): its unit vector
``x / |x|`` and its random Fourier features ``cos(W x + b)``. Integer sums do not depend on the
order of events, so panes, partitions, replays and restarts give the same bits.

From the window's means and the reference's, :meth:`EmbeddingSketch.evaluate` writes
``embedding_cosine_distance`` (of the mean unit vectors) and ``embedding_mmd2`` (the squared
maximum mean discrepancy under a Gaussian kernel, approximated by the random Fourier map, less
its expected value under no drift) with its p-value
(:func:`drifthouse.detectors.stats.rff_mmd2`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections.abc import Collection, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from drifthouse.detectors import _embedding_kernels as _k
from drifthouse.detectors import stats
from drifthouse.detectors.base import NO_CONTEXT, Context, Result, Sketch, State
from drifthouse.detectors.reference import EmbeddingProfile, Profile
from drifthouse.errors import ProfileError, SketchError

__all__ = [
    "RFF_FEATURES",
    "SCALE",
    "SLOTS",
    "WRONG_LENGTH",
    "EmbeddingBatch",
    "EmbeddingSketch",
    "EmbeddingState",
    "ReferenceMoments",
    "array_column",
    "is_array",
    "median_bandwidth",
    "reference_moments",
    "rff_digest",
    "rff_map",
    "seed_for",
]

SCALE = 2**32
#: The status of a value that is an array of the wrong length (beside base's codes).
WRONG_LENGTH = _k.WRONG_LENGTH
#: The count slots of a feature, in order (a status code is the slot of its count).
SLOTS = ("count", "missing", "type_error", "wrong_length", "non_finite", "zero_vector")
#: Frequencies of the random Fourier map a profile draws by default.
RFF_FEATURES = 64
#: Vectors the bandwidth's median distance is taken over (evenly spaced in the reference).
BANDWIDTH_SAMPLE = 1_000


def seed_for(name: str) -> int:
    """The default seed of a feature's random Fourier map: CRC-32 of its name."""
    return zlib.crc32(name.encode("utf-8"))


def rff_map(profile: EmbeddingProfile) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(W^T, b)`` of the feature's random Fourier map: ``W`` has ``rff_features`` rows of
    ``dim`` standard normals over ``bandwidth``, ``b`` uniform phases in ``[0, 2 pi)``, both
    drawn from ``numpy.random.default_rng(seed)``."""
    return _draw(profile.seed, profile.dim, profile.rff_features, profile.bandwidth)


def _draw(
    seed: int, dim: int, n_rff: int, bandwidth: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_rff, dim)) / bandwidth
    b = rng.uniform(0.0, 2.0 * np.pi, n_rff)
    return np.ascontiguousarray(w.T), b


def _scratch(n_rff: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The kernel's work arrays: a block of events' Fourier sums and their rows."""
    return np.empty((_k.BLOCK, n_rff)), np.empty(_k.BLOCK, dtype=np.int64)


def rff_digest(wt: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> str:
    """A short digest of a drawn map: a profile refuses a map drawn otherwise."""
    return hashlib.blake2b(wt.tobytes() + b.tobytes(), digest_size=8).hexdigest()


def median_bandwidth(valid: npt.NDArray[np.float64]) -> float:
    """The median distance between pairs of (up to :data:`BANDWIDTH_SAMPLE`, evenly spaced)
    valid vectors: the Gaussian kernel's usual scale; 1.0 when they are all one point."""
    n = valid.shape[0]
    take = np.unique(np.linspace(0, n - 1, min(n, BANDWIDTH_SAMPLE)).astype(np.int64))
    x = valid[take]
    sq = (x * x).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    upper = d2[np.triu_indices(x.shape[0], k=1)]
    median = float(np.sqrt(np.median(upper))) if upper.size else 0.0
    return median if median > 0 and np.isfinite(median) else 1.0


@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddingState(State):
    """``counts`` (features, 6) by :data:`SLOTS`; ``unit_sum`` and ``rff_sum`` the fixed-point
    sums of every feature, one after another (int64, units of ``2**-32``)."""

    counts: npt.NDArray[np.int64]
    unit_sum: npt.NDArray[np.int64]
    rff_sum: npt.NDArray[np.int64]


@dataclasses.dataclass(frozen=True, slots=True)
class EmbeddingBatch:
    """A micro-batch: per feature its values ``(n, dim)`` (rows not ``PRESENT`` are not
    read), and ``status`` ``(n, features)``: base's codes and :data:`WRONG_LENGTH`."""

    values: Sequence[npt.NDArray[np.float64]]
    status: npt.NDArray[np.uint8]

    @classmethod
    def of(cls, columns: _HasEmbeddings) -> EmbeddingBatch:
        """The embedding part of a model's columns (:class:`~drifthouse.detectors.columns.Columns`)."""
        if columns.embedding_status is None:
            raise SketchError("these columns were laid out without the model's embeddings")
        return cls(columns.embeddings, columns.embedding_status)


class _HasEmbeddings(Protocol):
    @property
    def embeddings(self) -> Sequence[npt.NDArray[np.float64]]: ...
    @property
    def embedding_status(self) -> npt.NDArray[np.uint8] | None: ...


def is_array(value: object) -> bool:
    """An embedding's value: a list, tuple or one-dimensional NumPy array (never a category)."""
    return type(value) is list or isinstance(value, tuple | np.ndarray)


def array_column(
    column: Sequence[object], dim: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
    """``(values (n, dim), status (n,))`` of one embedding feature's values: ``None`` is
    missing, an array of another length ``WRONG_LENGTH``, anything else that is not an array
    of numbers ``TYPE_ERROR``; ``null`` elements become NaN (counted as not finite)."""
    n = len(column)
    status = np.zeros(n, dtype=np.uint8)
    if n and all(type(v) is list and len(v) == dim for v in column):
        try:  # the common case: one NumPy call (None -> NaN)
            return np.array(column, dtype=np.float64).reshape(n, dim), status
        except (TypeError, ValueError):
            pass
    values = np.zeros((n, dim), dtype=np.float64)
    for i, v in enumerate(column):
        if v is None:
            status[i] = _k.MISSING
        elif not is_array(v) or np.ndim(v) != 1:  # type: ignore[arg-type]
            status[i] = _k.TYPE_ERROR
        elif len(v) != dim:  # type: ignore[arg-type]
            status[i] = WRONG_LENGTH
        elif any(type(x) is bool or isinstance(x, str | np.bool_) for x in v):  # type: ignore[attr-defined]
            status[i] = _k.TYPE_ERROR
        else:
            try:
                values[i] = np.asarray(v, dtype=np.float64)
            except (TypeError, ValueError):
                status[i] = _k.TYPE_ERROR
    return values, status


@dataclasses.dataclass(frozen=True)
class ReferenceMoments:
    """What a profile keeps of a reference column of one embedding feature (built by
    :func:`reference_moments`): its counts by :data:`SLOTS` and its means."""

    counts: npt.NDArray[np.int64]
    unit_mean: list[float]
    rff_mean: list[float]


def reference_moments(
    values: npt.NDArray[np.float64],
    status: npt.NDArray[np.uint8],
    *,
    seed: int,
    bandwidth: float,
    n_rff: int,
) -> tuple[ReferenceMoments, str]:
    """The reference's counts and means, through the same kernel and fixed point as a window
    (so a window equal to the reference is at distance 0), and the map's digest."""
    wt, b = _draw(seed, values.shape[1], n_rff, bandwidth)
    counts = np.zeros(len(SLOTS), dtype=np.int64)
    unit = np.zeros(values.shape[1], dtype=np.int64)
    rff = np.zeros(n_rff, dtype=np.int64)
    _k._embedding_update(values, status, wt, b, counts, unit, rff, *_scratch(n_rff))
    n = max(int(counts[0]), 1)
    return (
        ReferenceMoments(
            counts, [float(v) for v in unit / (SCALE * n)], [float(v) for v in rff / (SCALE * n)]
        ),
        rff_digest(wt, b),
    )


class EmbeddingSketch(Sketch[EmbeddingState, EmbeddingBatch]):
    """The embedding features of one model, laid out from their profiles.

    Examples
    --------
    >>> import numpy as np
    >>> from drifthouse.profiles.embeddings import build_embedding_profile
    >>> rng = np.random.default_rng(0)
    >>> ref = build_embedding_profile("emb", rng.normal(size=(2000, 8)))
    >>> sk = EmbeddingSketch([ref])
    >>> batch = EmbeddingBatch([rng.normal(size=(500, 8)) + 1.0], np.zeros((500, 1), np.uint8))
    >>> rows = {r.metric: r for r in sk.evaluate(sk.update(sk.empty(), batch))}
    >>> rows["embedding_mmd2"].p_value < 1e-9, rows["count"].value
    (True, 500.0)
    """

    def __init__(self, profiles: Sequence[EmbeddingProfile]) -> None:
        self.profiles = list(profiles)
        self.maps = []
        for p in self.profiles:
            wt, b = rff_map(p)
            if rff_digest(wt, b) != p.rff_digest:
                raise ProfileError(
                    f"embedding {p.name!r}: this NumPy draws another random Fourier map from "
                    f"seed {p.seed} than the one the profile was built with (digest "
                    f"{rff_digest(wt, b)}, expected {p.rff_digest}); rebuild the profile "
                    "with `drifthouse profile`"
                )
            self.maps.append((wt, b))
        self.names = tuple(p.name for p in self.profiles)
        self.dims = tuple(p.dim for p in self.profiles)
        #: ``(name, dim)`` per feature, for :class:`~drifthouse.detectors.layout.FeatureLayout`.
        self.layout_pairs = tuple(zip(self.names, self.dims, strict=True))
        self._unit_at = np.concatenate([[0], np.cumsum(self.dims)]).astype(np.intp)
        self._rff_at = np.concatenate(
            [[0], np.cumsum([p.rff_features for p in self.profiles])]
        ).astype(np.intp)
        self.layout = hashlib.blake2b(
            "|".join(f"{p.name}:{p.dim}:{p.rff_digest}" for p in self.profiles).encode(),
            digest_size=8,
        ).hexdigest()

    @classmethod
    def of(cls, profile: Profile | None, pii: Collection[str] = ()) -> EmbeddingSketch | None:
        """The sketch of a profile's embedding features but the PII ones (never sketched), or
        ``None`` when there are none."""
        found = [e for e in profile.embeddings if e.name not in pii] if profile else []
        return cls(found) if found else None

    def empty(self) -> EmbeddingState:
        return EmbeddingState(
            layout=self.layout,
            counts=np.zeros((len(self.profiles), len(SLOTS)), dtype=np.int64),
            unit_sum=np.zeros(int(self._unit_at[-1]), dtype=np.int64),
            rff_sum=np.zeros(int(self._rff_at[-1]), dtype=np.int64),
        )

    def update(self, state: EmbeddingState, batch: EmbeddingBatch) -> EmbeddingState:
        """Add a batch, in place (integer sums: the order of events never matters)."""
        if len(batch.values) != len(self.profiles) or batch.status.shape[1:] != (
            len(self.profiles),
        ):
            raise SketchError(
                f"an embedding batch needs one array per feature {list(self.names)} and a "
                f"status column each (got {len(batch.values)} arrays, status "
                f"{batch.status.shape})"
            )
        for j, (wt, b) in enumerate(self.maps):
            values = np.ascontiguousarray(batch.values[j], dtype=np.float64)
            if values.ndim != 2 or values.shape[1] != self.dims[j]:
                raise SketchError(
                    f"embedding {self.names[j]!r}: values must be (events, {self.dims[j]}) "
                    f"(got {values.shape})"
                )
            _k._embedding_update(
                values,
                np.ascontiguousarray(batch.status[:, j]),
                wt,
                b,
                state.counts[j],
                state.unit_sum[self._unit_at[j] : self._unit_at[j + 1]],
                state.rff_sum[self._rff_at[j] : self._rff_at[j + 1]],
                *_scratch(b.shape[0]),
            )
        return state

    def merge(self, a: EmbeddingState, b: EmbeddingState) -> EmbeddingState:
        if a.layout != b.layout or b.layout != self.layout:
            raise SketchError("cannot merge embedding states of different layouts")
        return EmbeddingState(
            layout=a.layout,
            counts=a.counts + b.counts,
            unit_sum=a.unit_sum + b.unit_sum,
            rff_sum=a.rff_sum + b.rff_sum,
        )

    def evaluate(self, state: EmbeddingState, context: Context = NO_CONTEXT) -> list[Result]:
        """Per feature: its counts, ``missing_rate``, and (with valid vectors on both sides)
        ``embedding_cosine_distance``, ``embedding_mmd2`` and ``embedding_mmd2_pvalue``."""
        out: list[Result] = []
        for j, p in enumerate(self.profiles):
            counts = state.counts[j]
            n = int(counts[0])
            total = int(counts.sum())
            if total == 0:
                continue
            out += [Result(p.name, slot, float(counts[i]), None, p.count, n) for i, slot in
                    enumerate(SLOTS)]  # fmt: skip
            out.append(Result(p.name, "missing_rate", float(counts[1]) / total, None, p.count, n))
            if n == 0 or p.count == 0:
                continue
            unit = state.unit_sum[self._unit_at[j] : self._unit_at[j + 1]] / (SCALE * n)
            cosine = stats.cosine_distance(ref_mean=np.asarray(p.unit_mean), cur_mean=unit)
            if cosine is not None:
                out.append(Result(p.name, "embedding_cosine_distance", cosine, None, p.count, n))
            rff = state.rff_sum[self._rff_at[j] : self._rff_at[j + 1]] / (SCALE * n)
            mmd2, pvalue = stats.rff_mmd2(
                ref_mean=np.asarray(p.rff_mean),
                cur_mean=rff,
                n_ref=p.count,
                n_cur=n,
                trace=p.rff_trace,
                trace2=p.rff_trace2,
            )
            out.append(Result(p.name, "embedding_mmd2", mmd2, pvalue, p.count, n))
            if pvalue is not None:
                out.append(Result(p.name, "embedding_mmd2_pvalue", pvalue, None, p.count, n))
        return out
