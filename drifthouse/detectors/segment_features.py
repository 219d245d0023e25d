"""Each segment value's counts on every feature's PSI bins, for per-feature segment attribution
(docs/statistics.md, "Drift attribution").

A segment value (``country=BR``) keeps one flat ``int64`` vector: the PSI bins of each numeric
feature (the bins its ``psi`` is computed on, :meth:`NumericBlock.coarse_counts`), then each
categorical feature's reference categories and ``__other__``. Counts are integers, so they merge
by addition, exactly, in any order, like the rest of the state. A value is counted in the bin the
model-wide histogram puts it in: numeric values present and finite, ``edges[i-1] <= v <
edges[i]`` on the profile's fine grid, then its PSI bin; categorical codes ``-1`` (missing) in no
bin, codes past the reference's list (new categories) in ``__other__``.

From these, :meth:`FeatureBins.shares` weighs each segment value's PSI of a feature by its
values there (:func:`~drifthouse.detectors.attribution.segment_shares`): which segment values
carry a drifted feature's drift.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drifthouse.detectors import stats
from drifthouse.detectors.attribution import segment_shares
from drifthouse.detectors.categorical import CategoricalBlock, CategoricalState
from drifthouse.detectors.columns import Columns
from drifthouse.detectors.numeric import NumericBlock, NumericState

__all__ = ["FeatureBins"]


class FeatureBins:
    """Where each feature's PSI bins sit in a segment value's flat count vector.

    Examples
    --------
    Two numeric features with 3 and 2 PSI bins and one categorical feature with two categories
    (plus ``__other__``) make a vector of 3 + 2 + 3 = 8 counts.
    """

    def __init__(self, numeric: NumericBlock, categorical: CategoricalBlock) -> None:
        self.numeric = numeric
        self.categorical = categorical
        sizes = [int(n) for n in numeric.n_coarse] + [int(k) + 1 for k in categorical.n_categories]
        self.offsets = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64))).astype(np.int64)
        self.size = int(self.offsets[-1])
        self.names = (*numeric.names, *categorical.names)

    def empty(self) -> np.ndarray:
        return np.zeros(self.size, dtype=np.int64)

    def add(self, counts: np.ndarray, cols: Columns, idx: np.ndarray | None) -> None:
        """Count the rows ``idx`` (all when ``None``) of ``cols`` into ``counts``, in place."""
        flat: list[np.ndarray] = []
        for j in range(self.numeric.n_features):
            values = cols.numeric[:, j] if idx is None else cols.numeric[idx, j]
            status = cols.status[:, j] if idx is None else cols.status[idx, j]
            v = values[(status == 0) & np.isfinite(values)]
            edges = self.numeric.edges[j, : int(self.numeric.n_bins[j]) - 1]
            fine = np.searchsorted(edges, v, side="right")
            flat.append(self.numeric.coarse_index[j, fine] + self.offsets[j])
        first = self.numeric.n_features
        for j in range(self.categorical.n_features):
            codes = cols.codes[:, j] if idx is None else cols.codes[idx, j]
            k = int(self.categorical.n_categories[j])
            slots = np.minimum(codes[codes >= 0].astype(np.int64), k)
            flat.append(slots + self.offsets[first + j])
        if flat:
            counts += np.bincount(np.concatenate(flat), minlength=self.size).astype(np.int64)

    def reference(self, j: int) -> np.ndarray:
        """Feature ``j``'s (in :attr:`names` order) reference counts on its PSI bins."""
        first = self.numeric.n_features
        if j < first:
            ref: NumericState = self.numeric.reference
            return self.numeric.coarse_counts(ref, j)
        cat: CategoricalState = self.categorical.reference
        k = int(self.categorical.n_categories[j - first]) + 1
        return np.asarray(cat.counts[j - first, :k], dtype=np.int64)

    def shares(
        self,
        feature: str,
        segments: Sequence[tuple[str, np.ndarray | None]],
        *,
        top_k: int,
    ) -> list[tuple[str, float, int]]:
        """``(segment, share, values)`` of ``feature``'s drift per segment value (``segments``:
        each value's flat counts, ``None`` when it has none): its PSI against the reference on
        the feature's PSI bins, weighted by its values there, the ``top_k`` largest shares per
        attribute (:func:`~drifthouse.detectors.attribution.segment_shares`)."""
        j = self.names.index(feature)
        ref = self.reference(j)
        lo, hi = int(self.offsets[j]), int(self.offsets[j + 1])
        eps = self.numeric.eps if j < self.numeric.n_features else self.categorical.eps
        if not int(ref.sum()):
            return []
        items: list[tuple[str, int, float]] = []
        for name, counts in segments:
            if counts is None:
                continue
            cur = counts[lo:hi]
            n = int(cur.sum())
            if n:
                psi = stats.psi(ref_counts=ref, cur_counts=cur, eps=eps)
                items.append((name, n, psi))
        values = {name: n for name, n, _ in items}
        return [(s, share, values[s]) for s, share in segment_shares(items, top_k=top_k)]
