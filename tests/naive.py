"""Naive NumPy/SciPy references for the detector kernels and statistics (stumpy style).

Slow and obvious on purpose: each mirrors a definition in the docs, not the fast code.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np


def numeric_block(
    values: np.ndarray, status: np.ndarray, edges: list[np.ndarray], lo: np.ndarray, hi: np.ndarray
) -> dict[str, Any]:
    """Per-feature histogram and quality counters, one feature at a time with NumPy."""
    n_f = values.shape[1]
    out: dict[str, Any] = {
        k: []
        for k in (
            "counts",
            "count",
            "missing",
            "non_finite",
            "type_error",
            "out_of_range",
            "vmin",
            "vmax",
            "mean",
            "var",
        )
    }
    for j in range(n_f):
        v, s = values[:, j], status[:, j]
        present = s == 0
        finite = present & np.isfinite(v)
        x = v[finite]
        out["counts"].append(
            np.bincount(np.searchsorted(edges[j], x, side="right"), minlength=edges[j].size + 1)
        )
        out["count"].append(x.size)
        out["missing"].append(int(np.sum(s == 1)))
        out["type_error"].append(int(np.sum(s == 2)))
        out["non_finite"].append(int(np.sum(present & ~np.isfinite(v))))
        out["out_of_range"].append(int(np.sum((x < lo[j]) | (x > hi[j]))))
        out["vmin"].append(x.min() if x.size else np.inf)
        out["vmax"].append(x.max() if x.size else -np.inf)
        out["mean"].append(x.mean() if x.size else 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            out["var"].append(x.var() if x.size else 0.0)
    return out


def categorical_block(codes: np.ndarray, n_categories: np.ndarray) -> dict[str, Any]:
    """Per-feature category counts with the new-category code folded into "other"."""
    out: dict[str, Any] = {"counts": [], "count": [], "missing": [], "new_category": []}
    for j in range(codes.shape[1]):
        c = codes[:, j].astype(np.int64)
        k = int(n_categories[j])
        present = c[c >= 0]
        out["missing"].append(int(np.sum(c < 0)))
        out["new_category"].append(int(np.sum(c == k + 1)))
        out["counts"].append(np.bincount(np.minimum(present, k), minlength=k + 1))
        out["count"].append(present.size)
    return out


def quantile_buckets(
    values: np.ndarray, min_value: float, gamma: float, n_buckets: int
) -> np.ndarray:
    """DDSketch slots by the definition: dense bucket k holds min*g^k < v <= min*g^(k+1)."""
    counts = np.zeros(n_buckets + 2, dtype=np.int64)
    for v in values:
        if not math.isfinite(v):
            continue
        if v <= min_value:
            counts[0] += 1
            continue
        k = max(math.ceil(math.log(v / min_value) / math.log(gamma)) - 1, 0)
        counts[k + 1 if k < n_buckets else n_buckets + 1] += 1
    return counts


def status_counts(statuses: np.ndarray) -> np.ndarray:
    s = np.asarray(statuses)
    ok = (s >= 200) & (s < 400)
    c4 = (s >= 400) & (s < 500)
    c5 = (s >= 500) & (s < 600)
    return np.asarray([ok.sum(), c4.sum(), c5.sum(), (~(ok | c4 | c5)).sum()], dtype=np.int64)


def psi(ref: np.ndarray, cur: np.ndarray, eps: float) -> float:
    """PSI by the contract's formula, term by term."""
    total = 0.0
    n_ref, n_cur = ref.sum(), cur.sum()
    for r, c in zip(ref, cur, strict=True):
        p = max(r / n_ref, eps)
        q = max(c / n_cur, eps)
        total += (q - p) * math.log(q / p)
    return total


def ks_on_edges(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> float:
    """Largest ECDF gap of raw samples, looked at only just below each edge."""
    fx = np.searchsorted(np.sort(x), edges, side="left") / x.size
    fy = np.searchsorted(np.sort(y), edges, side="left") / y.size
    return float(np.max(np.abs(fx - fy))) if edges.size else 0.0


def kl(ref: np.ndarray, cur: np.ndarray, eps: float) -> float:
    """KL(current || reference) by the contract's formula, term by term, on PSI's floor."""
    total = 0.0
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref == 0 or n_cur == 0:
        return 0.0
    for r, c in zip(ref, cur, strict=True):
        p = max(r / n_ref, eps)
        q = max(c / n_cur, eps)
        total += q * math.log(q / p)
    return total


class EmbeddingMoments(NamedTuple):
    """What the embedding kernel sums, computed the plain NumPy way."""

    unit_sum: np.ndarray  # int64 (d,): sum of rint(x / |x| * 2**32) over valid rows
    rff_sum: np.ndarray  # int64 (D,): sum of rint(cos(x @ w + b) * 2**32) over valid rows


def naive_embedding_moments(values: np.ndarray, w: np.ndarray, b: np.ndarray) -> EmbeddingMoments:
    """Valid rows (finite, non-zero) of ``values`` (n, d) through the unit map and the random
    Fourier map ``cos(x @ w + b)`` (``w`` (d, D), ``b`` (D,)), summed in fixed point."""
    finite = np.isfinite(values).all(axis=1)
    x = values[finite]
    norm = np.sqrt((x * x).sum(axis=1))
    x = x[norm > 0]
    norm = norm[norm > 0]
    unit = np.rint(x / norm[:, None] * 2.0**32).astype(np.int64).sum(axis=0)
    rff = np.rint(np.cos(x @ w + b) * 2.0**32).astype(np.int64).sum(axis=0)
    return EmbeddingMoments(unit, rff)


def reconstruction_errors(
    x: np.ndarray, center: np.ndarray, scale: np.ndarray, mean: np.ndarray, components: np.ndarray
) -> np.ndarray:
    """PCA reconstruction error per row: scikit-learn's ``StandardScaler``, then
    ``PCA.inverse_transform(PCA.transform(z))``, spelled in NumPy (docs/statistics.md,
    "Multivariate drift")."""
    z = (x - center) / scale
    back = (z - mean) @ components.T @ components + mean
    return np.asarray(np.linalg.norm(z - back, axis=1))
