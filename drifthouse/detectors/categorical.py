"""All categorical features of a model sketched together: category counts and quality."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from drifthouse.detectors import _kernels, stats
from drifthouse.detectors.attribution import bin_results
from drifthouse.detectors.base import (
    NO_CONTEXT,
    Context,
    Result,
    Sketch,
    State,
    check_same_layout,
    layout_digest,
    reference_for,
)
from drifthouse.detectors.numeric import SketchPart
from drifthouse.detectors.reference import FeatureProfile, Profile, category_key
from drifthouse.errors import SketchError

__all__ = ["MISSING_CODE", "OTHER_LABEL", "CategoricalBlock", "CategoricalState"]

MISSING_CODE = -1
#: Label of the "other/unseen" bucket in ``sketches`` rows.
OTHER_LABEL = "__other__"


@dataclasses.dataclass(frozen=True, eq=False)
class CategoricalState(State):
    """Window state of a :class:`CategoricalBlock`.

    ``counts`` int64 (F, K_max + 1): column ``k < K_f`` counts feature ``f``'s ``k``-th
    reference category, column ``K_f`` everything else ("other": rare reference categories and
    new ones). int64 (F,) ``count`` (present), ``missing``, ``new_category`` (values never
    seen in the reference, also counted in "other").
    """

    counts: np.ndarray
    count: np.ndarray
    missing: np.ndarray
    new_category: np.ndarray


class CategoricalBlock(Sketch[CategoricalState, np.ndarray]):
    """Sketch of every categorical feature of a model, fed whole micro-batches of codes.

    The caller turns raw values into codes while extracting columns, with
    :meth:`encoder` (a dict per feature) or :meth:`codes_for`: ``-1`` missing, ``k`` the
    ``k``-th reference category, ``K_f`` a reference category outside the top list, and
    ``K_f + 1`` a category the reference never had.

    Examples
    --------
    >>> import numpy as np
    >>> from drifthouse.config import MetricsConfig
    >>> from drifthouse.profiles.columns import build_profile
    >>> p = build_profile(model="m", model_version="1", created_at="2026-01-01T00:00:00Z",
    ...     source_digest="", settings=MetricsConfig(), features={"c": ["a", "b", "b"] * 100})
    >>> block = CategoricalBlock.from_profile(p)
    >>> codes = block.codes_for(0, ["a", "b", "zzz", None])[:, None]
    >>> state = block.update(block.empty(), codes)
    >>> state.counts.tolist(), state.new_category.tolist(), state.missing.tolist()
    ([[1, 1, 1]], [1], [1])
    """

    def __init__(self, features: Sequence[FeatureProfile], *, eps: float = 1e-4) -> None:
        for f in features:
            if f.kind != "categorical":
                raise SketchError(
                    f"CategoricalBlock takes categorical features ({f.name!r} is {f.kind})"
                )
        self.features: tuple[FeatureProfile, ...] = tuple(features)
        self.names: tuple[str, ...] = tuple(f.name for f in features)
        self.eps = eps
        self.n_categories = np.asarray([len(f.categories) for f in features], dtype=np.int64)
        self._encoders: list[dict[str, int]] = []
        # Per feature, top categories whose name another one already has: (slot, first slot).
        self._aliases: list[list[tuple[int, int]]] = []
        for f in features:
            # Names go through category_key too: a profile written before keys were canonical
            # may name "1.0" what a window now calls "1", or hold both "1" and "1.0". The
            # first (most frequent) slot takes them all; the reference's counts follow.
            k = len(f.categories)
            enc: dict[str, int] = {}
            aliases = []
            for i, c in enumerate(f.categories):
                first = enc.setdefault(category_key(c) or c, i)
                if first != i:
                    aliases.append((i, first))
            for c in f.known_other:
                enc.setdefault(category_key(c) or c, k)
            self._encoders.append(enc)
            self._aliases.append(aliases)
        self.layout = layout_digest(
            "categorical", self.names, [list(f.categories) for f in features]
        )
        self.reference = self._reference_state()

    @classmethod
    def from_profile(cls, profile: Profile) -> CategoricalBlock:
        """The block of the profile's categorical features (in profile order)."""
        return cls(profile.categorical, eps=profile.settings.eps)

    @property
    def n_features(self) -> int:
        return len(self.features)

    def encoder(self, j: int) -> dict[str, int]:
        """Feature ``j``'s map from category name (see :func:`category_key`) to code.

        Names absent from the map are new: code ``K_f + 1`` (``new_code(j)``).
        """
        return self._encoders[j]

    def new_code(self, j: int) -> int:
        """The code of a category feature ``j``'s reference never had."""
        return int(self.n_categories[j]) + 1

    def codes_for(self, j: int, values: Iterable[object]) -> np.ndarray:
        """Codes (int32) of raw values of feature ``j`` (``None`` is missing)."""
        enc, new = self._encoders[j], self.new_code(j)
        out = []
        for v in values:
            key = category_key(v)
            out.append(MISSING_CODE if key is None else enc.get(key, new))
        return np.asarray(out, dtype=np.int32)

    def empty(self) -> CategoricalState:
        n_f = len(self.features)
        k_max = int(self.n_categories.max()) if n_f else 0
        return CategoricalState(
            layout=self.layout,
            counts=np.zeros((n_f, k_max + 1), dtype=np.int64),
            count=np.zeros(n_f, dtype=np.int64),
            missing=np.zeros(n_f, dtype=np.int64),
            new_category=np.zeros(n_f, dtype=np.int64),
        )

    def _reference_state(self) -> CategoricalState:
        s = self.empty()
        for j, f in enumerate(self.features):
            k = len(f.categories)
            s.counts[j, :k] = f.category_counts
            s.counts[j, k] = f.other_count
            for slot, first in self._aliases[j]:
                s.counts[j, first] += s.counts[j, slot]
                s.counts[j, slot] = 0
            s.count[j] = f.count
            s.missing[j] = f.missing
        return s

    def update(self, state: CategoricalState, batch: np.ndarray) -> CategoricalState:
        """Add a micro-batch of codes, int32 (n, F), in place and return ``state``."""
        check_same_layout("CategoricalBlock", self.layout, state)
        codes = np.ascontiguousarray(batch, dtype=np.int32)
        n_f = len(self.features)
        if codes.ndim != 2 or codes.shape[1] != n_f:
            raise SketchError(f"codes must have shape (n, {n_f}) (got {codes.shape})")
        if codes.shape[0] == 0 or n_f == 0:
            return state
        bad = _kernels._categorical_update(
            codes, self.n_categories, state.counts, state.count, state.missing, state.new_category
        )
        if bad >= 0:
            raise SketchError(
                f"row {bad}: codes must lie in -1 .. K_f + 1 per feature (got {codes[bad].tolist()}, K = {self.n_categories.tolist()})"
            )
        return state

    def merge(self, a: CategoricalState, b: CategoricalState) -> CategoricalState:
        """A new state holding both (exact: integer counts)."""
        check_same_layout("CategoricalBlock", self.layout, a, b)
        return CategoricalState(
            layout=self.layout,
            counts=a.counts + b.counts,
            count=a.count + b.count,
            missing=a.missing + b.missing,
            new_category=a.new_category + b.new_category,
        )

    def evaluate(self, state: CategoricalState, context: Context = NO_CONTEXT) -> list[Result]:
        """``chi2``, ``chi2_pvalue``, ``js``, ``psi``, ``kl`` (when both sides have values) and
        quality, against ``context.reference`` (default: the profile's :attr:`reference`).

        Categories are the reference's top list plus one "other" bucket; ``chi2`` is the
        homogeneity test with ``dof`` = non-empty buckets - 1.
        """
        reference = self._reference_of(state, context)
        current = state
        out: list[Result] = []
        for j, name in enumerate(self.names):
            k = int(self.n_categories[j]) + 1
            n_ref, n_cur = int(reference.count[j]), int(current.count[j])
            ref_c, cur_c = reference.counts[j, :k], current.counts[j, :k]
            if n_ref > 0 and n_cur > 0:
                stat, p, _dof = stats.chi2_homogeneity(ref_counts=ref_c, cur_counts=cur_c)
                out += [
                    Result(name, "chi2", stat, p, n_ref, n_cur),
                    Result(name, "chi2_pvalue", p, None, n_ref, n_cur),
                    Result(
                        name,
                        "js",
                        stats.js_distance(ref_counts=ref_c, cur_counts=cur_c),
                        None,
                        n_ref,
                        n_cur,
                    ),
                    Result(
                        name,
                        "psi",
                        stats.psi(ref_counts=ref_c, cur_counts=cur_c, eps=self.eps),
                        None,
                        n_ref,
                        n_cur,
                    ),
                    Result(
                        name,
                        "kl",
                        stats.kl(ref_counts=ref_c, cur_counts=cur_c, eps=self.eps),
                        None,
                        n_ref,
                        n_cur,
                    ),
                ]
            missing = int(current.missing[j])
            seen = n_cur + missing
            out += [
                Result(name, "count", float(n_cur), None, n_ref, n_cur),
                Result(name, "missing", float(missing), None, n_ref, n_cur),
                Result(name, "missing_rate", missing / seen if seen else 0.0, None, n_ref, n_cur),
                Result(name, "new_category", float(current.new_category[j]), None, n_ref, n_cur),
            ]
        return out

    def _reference_of(self, state: CategoricalState, context: Context) -> CategoricalState:
        return reference_for(
            "CategoricalBlock", self.layout, CategoricalState, self.reference, context, state
        )

    def contributions(
        self,
        state: CategoricalState,
        *,
        top_k: int,
        min_psi: float,
        context: Context = NO_CONTEXT,
    ) -> list[Result]:
        """Drift attribution on the categories (the top list and ``__other__``,
        :func:`~drifthouse.detectors.attribution.bin_results`): per feature whose PSI is at
        least ``min_psi``, its ``top_k`` categories with the largest terms."""
        reference = self._reference_of(state, context)
        out: list[Result] = []
        for j, f in enumerate(self.features):
            k = int(self.n_categories[j]) + 1
            out += bin_results(
                f.name,
                [*f.categories, OTHER_LABEL],
                reference.counts[j, :k],
                state.counts[j, :k],
                eps=self.eps,
                top_k=top_k,
                min_psi=min_psi,
            )
        return out

    def sketch_parts(self, state: CategoricalState) -> list[SketchPart]:
        """One ``categories`` part per feature: labels (top list + ``__other__``) and counts."""
        check_same_layout("CategoricalBlock", self.layout, state)
        parts = []
        for j, f in enumerate(self.features):
            k = int(self.n_categories[j]) + 1
            parts.append(
                SketchPart(
                    feature=f.name,
                    kind="categories",
                    edges=[],
                    labels=[*f.categories, OTHER_LABEL],
                    counts=[int(c) for c in state.counts[j, :k]],
                    n=int(state.count[j]),
                )
            )
        return parts

    def nbytes(self, state: CategoricalState) -> int:
        return sum(a.nbytes for a in state.arrays().values())
