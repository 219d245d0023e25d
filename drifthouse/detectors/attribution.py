"""Drift attribution: which bins, categories and segment values carry a window's drift
(docs/statistics.md, "Drift attribution").

Everything here is computed from the same counts as PSI and JS (the PSI bins of a numeric
feature, the reference's top categories plus ``__other__``, the prediction's bins or classes),
so attribution merges, replays and scales out exactly like the statistics it splits:

- ``psi_contribution``: the bin's term of PSI, ``(q_i - p_i) * ln(q_i / p_i)`` on the floored
  proportions (:func:`~drifthouse.detectors.stats.psi_terms`); >= 0, and the terms of all bins
  add up to ``psi``;
- ``js_contribution``: the bin's term of the Jensen-Shannon divergence (base 2,
  :func:`~drifthouse.detectors.stats.js_terms`); the terms add up to ``js ** 2``;
- ``mass_shift``: ``q_i - p_i`` unfloored, the signed change of the bin's share of events
  (``+0.18``: 18% more of the window's events fall in the bin than of the reference's);
- ``psi_segment_share``: per segment value, its PSI of the prediction (or of a drifted feature,
  from the segment value's counts on the feature's PSI bins:
  :mod:`~drifthouse.detectors.segment_features`) weighted by its values, over the sum of those
  products across the values of its attribute.

Rows are bounded: a feature gets its ``top_k`` bins with the largest PSI terms (ties by bin
order), and only when its PSI is at least ``min_psi``; an attribute its ``top_k`` segment
values with the largest shares (ties by name).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from drifthouse.detectors import stats
from drifthouse.detectors.base import Result
from drifthouse.rows import ATTRIBUTION_METRICS

__all__ = [
    "ATTRIBUTION_METRICS",
    "bin_labels",
    "bin_results",
    "format_edge",
    "segment_shares",
]


def format_edge(x: float, digits: int = 17) -> str:
    """A bin edge as a label shows it: ``digits`` significant digits, a float always (``420.0``).

    Examples
    --------
    >>> format_edge(420, 6), format_edge(9.519199999999998, 6), format_edge(1e-7, 6)
    ('420.0', '9.5192', '1e-07')
    """
    text = f"{float(x):.{digits}g}"
    return text if any(c in text for c in ".enai") else text + ".0"


def bin_labels(psi_edges: Sequence[float]) -> tuple[str, ...]:
    """Labels of the bins a numeric feature's PSI edges make: ``(-inf, e0)``, ``[e0, e1)``, ...,
    ``[e_last, +inf)`` (a value ``v`` is in ``[a, b)`` when ``a <= v < b``).

    Edges are written with the fewest significant digits, six at least, that keep every edge of
    the feature apart (up to 17, which tells any two doubles apart): two bins never share a
    label, so their rows never share a key.

    Examples
    --------
    >>> bin_labels([12.5, 420.0])
    ('(-inf, 12.5)', '[12.5, 420.0)', '[420.0, +inf)')
    >>> bin_labels([1767225600000.0, 1767225600001.0])[1]
    '[1767225600000.0, 1767225600001.0)'
    """
    if len(psi_edges) == 0:
        return ("(-inf, +inf)",)
    edges = [float(x) for x in psi_edges]
    for digits in range(6, 18):
        e = [format_edge(x, digits) for x in edges]
        if len(set(e)) == len(set(edges)):
            break
    inner = [f"[{a}, {b})" for a, b in itertools.pairwise(e)]
    return (f"(-inf, {e[0]})", *inner, f"[{e[-1]}, +inf)")


def bin_results(
    feature: str,
    labels: Sequence[str],
    ref_counts: ArrayLike,
    cur_counts: ArrayLike,
    *,
    eps: float,
    top_k: int,
    min_psi: float,
) -> list[Result]:
    """The attribution rows of one feature: for its ``top_k`` bins with the largest PSI terms
    (terms of 0 left out), ``psi_contribution``, ``js_contribution`` and ``mass_shift``, each
    with ``bin`` set to the bin's label. None when ``top_k`` is 0, either side is empty or the
    feature's PSI is below ``min_psi``."""
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    if top_k <= 0 or n_ref == 0 or n_cur == 0:
        return []
    psi_t = stats.psi_terms(ref_counts=ref, cur_counts=cur, eps=eps)
    if float(np.sum(psi_t)) < min_psi:
        return []
    js_t = stats.js_terms(ref_counts=ref, cur_counts=cur)
    shift = stats.mass_shift(ref_counts=ref, cur_counts=cur)
    # Largest term first, ties by bin order: a stable sort of the negated terms.
    order = [int(i) for i in np.argsort(-psi_t, kind="stable") if psi_t[i] > 0][:top_k]
    out: list[Result] = []
    for i in order:
        label = labels[i]
        out += [
            Result(feature, "psi_contribution", float(psi_t[i]), None, n_ref, n_cur, label),
            Result(feature, "js_contribution", float(js_t[i]), None, n_ref, n_cur, label),
            Result(feature, "mass_shift", float(shift[i]), None, n_ref, n_cur, label),
        ]
    return out


def segment_shares(
    items: Iterable[tuple[str, int, float]], *, top_k: int
) -> list[tuple[str, float]]:
    """``(segment, share)`` of the drift each segment value carries, from ``(segment, events,
    psi)`` of the values of a window (``segment`` is ``attr=value``).

    A value's weight is ``events * psi``; its share is its weight over the sum of the weights of
    its attribute's values, so the shares of an attribute add up to 1. Values without drift
    (weight 0) get no share; per attribute the ``top_k`` largest shares are kept (ties by name),
    attributes in name order.
    """
    by_attr: dict[str, list[tuple[str, float]]] = {}
    for segment, events, psi in items:
        attr = segment.split("=", 1)[0]
        by_attr.setdefault(attr, []).append((segment, events * psi))
    out: list[tuple[str, float]] = []
    for attr in sorted(by_attr):
        weights = sorted(by_attr[attr])  # by segment: the sum does not depend on input order
        total = sum(w for _, w in weights)
        if not total > 0:
            continue
        ranked = sorted(((s, w / total) for s, w in weights if w > 0), key=lambda t: (-t[1], t[0]))
        out += ranked[:top_k]
    return out
