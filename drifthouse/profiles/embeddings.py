"""Profiles of embedding features (docs/statistics.md, "Embedding features"): a reference
column whose values are arrays of numbers.

:func:`is_embedding_column` tells such a column apart (a 2-D NumPy array, or values that are
mostly arrays); :func:`build_embedding_profile` takes its dimension (the most common length),
counts its values by kind, and fits what windows are compared with: the mean unit vector, and
the random Fourier map (bandwidth by the median heuristic, seed from the name) with the mean of
its features and the trace of their covariance and of its square.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from drifthouse.detectors.embedding import (
    RFF_FEATURES,
    array_column,
    is_array,
    median_bandwidth,
    reference_moments,
    rff_map,
    seed_for,
)
from drifthouse.detectors.reference import EmbeddingProfile
from drifthouse.errors import ProfileError

__all__ = ["build_embedding_profile", "is_embedding_column"]

#: A column is an embedding when at least this share of its present values are arrays.
ARRAY_SHARE = 0.95
_CHUNK = 8_192  # reference rows per step of the covariance (bounded memory)


def is_embedding_column(column: np.ndarray | Sequence[Any]) -> bool:
    """A 2-D NumPy array, or a sequence whose present values are at least 95% arrays."""
    if isinstance(column, np.ndarray) and column.dtype != object:
        return column.ndim == 2
    present = [v for v in column if v is not None]
    return bool(present) and sum(map(is_array, present)) >= ARRAY_SHARE * len(present)


def build_embedding_profile(
    name: str,
    column: np.ndarray | Sequence[Any],
    *,
    n_rff: int = RFF_FEATURES,
    seed: int | None = None,
) -> EmbeddingProfile:
    """Profile one embedding column (see the module docstring).

    >>> p = build_embedding_profile("emb", [[1.0, 0.0], [0.0, 1.0], None, [1.0]])
    >>> (p.dim, p.count, p.missing, p.wrong_length)
    (2, 2, 1, 1)
    """
    if isinstance(column, np.ndarray) and column.dtype != object and column.ndim == 2:
        dim = int(column.shape[1])
        values = np.ascontiguousarray(column, dtype=np.float64)
        status = np.where(np.isnan(values).all(axis=1), 1, 0).astype(np.uint8)
    else:
        lengths = Counter(len(v) for v in column if is_array(v) and np.ndim(v) == 1)
        if not lengths:
            raise ProfileError(f"feature {name!r}: no array among its values; not an embedding")
        dim = max(lengths.items(), key=lambda t: (t[1], -t[0]))[0]  # most common, then shortest
        values, status = array_column(list(column), dim)
    if dim < 1:
        raise ProfileError(f"feature {name!r}: its arrays are empty; an embedding needs numbers")
    seed = seed_for(name) if seed is None else seed
    valid = _valid(values, status)
    bandwidth = median_bandwidth(valid) if valid.shape[0] else 1.0
    moments, digest = reference_moments(values, status, seed=seed, bandwidth=bandwidth, n_rff=n_rff)
    counts = [int(c) for c in moments.counts]
    total = sum(counts)
    probe = EmbeddingProfile(
        name=name, dim=dim, count=counts[0], missing=counts[1],
        missing_rate=counts[1] / total if total else 0.0, type_error=counts[2],
        wrong_length=counts[3], non_finite=counts[4], zero_vector=counts[5],
        unit_mean=moments.unit_mean, seed=seed, bandwidth=bandwidth, rff_features=n_rff,
        rff_digest=digest, rff_mean=moments.rff_mean, rff_trace=0.0, rff_trace2=0.0,
    )  # fmt: skip
    trace, trace2 = _covariance_traces(valid, probe)
    return msgspec.structs.replace(probe, rff_trace=trace, rff_trace2=trace2)


def _valid(
    values: npt.NDArray[np.float64], status: npt.NDArray[np.uint8]
) -> npt.NDArray[np.float64]:
    """The rows the sketch takes: present, finite, of finite non-zero length."""
    ok = status == 0
    with np.errstate(over="ignore", invalid="ignore"):
        ok &= np.isfinite(values).all(axis=1)
        sq = (values * values).sum(axis=1)
    ok &= np.isfinite(sq) & (sq > 0)
    valid: npt.NDArray[np.float64] = values[ok]
    return valid


def _covariance_traces(valid: npt.NDArray[np.float64], p: EmbeddingProfile) -> tuple[float, float]:
    """``tr C`` and ``tr C²`` of the covariance ``C`` of ``cos(W x + b)`` over the valid
    reference vectors (population covariance, in chunks)."""
    n = valid.shape[0]
    if n < 2:
        return 0.0, 0.0
    wt, b = rff_map(p)
    total = np.zeros(p.rff_features)
    cross = np.zeros((p.rff_features, p.rff_features))
    for start in range(0, n, _CHUNK):
        z = np.cos(valid[start : start + _CHUNK] @ wt + b)
        total += z.sum(axis=0)
        cross += z.T @ z
    mean = total / n
    cov = cross / n - np.outer(mean, mean)
    return float(np.trace(cov)), float(np.sum(cov * cov))
