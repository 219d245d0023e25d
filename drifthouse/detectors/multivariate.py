"""Multivariate drift of a model's features: the PCA reconstruction error of each event
(docs/statistics.md, "Multivariate drift").

A profile's :class:`Multivariate` part names the features the PCA was fitted on and how each
becomes a column of the matrix :mod:`drifthouse.detectors.pca` works on, as NannyML's
``DataReconstructionDriftCalculator`` does:

- a numeric feature is its value; a missing, non-finite or mistyped value is imputed with the
  reference mean (``SimpleImputer(strategy="mean")``);
- a categorical feature is the share of the reference's rows with its category (a normalized
  count encoding, ``CountEncoder(normalize=True)``); a missing value is imputed with the most
  frequent reference category (``SimpleImputer(strategy="most_frequent")``), whose share counts
  the missing rows too; the categories beyond the profile's top list share one code and one
  share (the "other" bucket); a category the reference never had is 0.

:class:`MultivariateSketch` encodes a micro-batch's columns so and feeds
:class:`~drifthouse.detectors.pca.ReconstructionSketch`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from drifthouse.detectors.base import NO_CONTEXT, PRESENT, Context, Result, Sketch
from drifthouse.detectors.pca import ErrorBand, Pca, ReconstructionSketch, ReconstructionState
from drifthouse.errors import ProfileError, SketchError

__all__ = ["Multivariate", "MultivariateBatch", "MultivariateSketch", "Profiled", "sketch_for"]


class Multivariate(msgspec.Struct, frozen=True, kw_only=True):
    """A profile's multivariate part: the PCA's columns are ``numeric`` then ``categorical``
    features (profile order). ``fill`` is each numeric feature's reference mean;
    ``frequencies`` holds, per categorical feature, the encoded value of each code plus one:
    ``[missing, category 0, ..., category K - 1, other, new]``."""

    numeric: list[str]
    categorical: list[str]
    fill: list[float]
    frequencies: list[list[float]]
    pca: Pca
    band: ErrorBand

    def validate(self, where: str, categories: Mapping[str, int | None] | None = None) -> None:
        """Raise :class:`ProfileError` if the parts disagree, or (given the profile's features:
        ``None`` for a numeric one, its number of top categories for a categorical one) name
        features the profile lacks or encode a feature's codes with a list of the wrong length."""
        if len(self.fill) != len(self.numeric) or len(self.frequencies) != len(self.categorical):
            raise ProfileError(
                f"{where}: one fill per numeric feature and one frequency list per categorical "
                f"feature (got {len(self.fill)} for {len(self.numeric)} and "
                f"{len(self.frequencies)} for {len(self.categorical)})"
            )
        if len(self.numeric) + len(self.categorical) != self.pca.width:
            raise ProfileError(
                f"{where}: the PCA has {self.pca.width} columns for "
                f"{len(self.numeric) + len(self.categorical)} features"
            )
        if any(len(f) < 3 for f in self.frequencies):
            raise ProfileError(f"{where}: a frequency list has at least missing, other and new")
        self.pca.validate(f"{where}.pca")
        self.band.validate(f"{where}.band")
        if categories is None:
            return
        for name in self.numeric:
            if name not in categories or categories[name] is not None:
                raise ProfileError(f"{where}: {name!r} is not a numeric feature of the profile")
        for name, shares in zip(self.categorical, self.frequencies, strict=True):
            k = categories.get(name)
            if k is None or len(shares) != k + 3:
                raise ProfileError(
                    f"{where}: {name!r} must be a categorical feature of the profile with one "
                    f"share per code (K + 3 for K top categories; got {len(shares)}, K = {k})"
                )


@dataclasses.dataclass(frozen=True, slots=True)
class MultivariateBatch:
    """A micro-batch's feature columns in the model's layout: ``numeric`` float64
    ``(n, F_num)`` with ``status`` uint8 (0 present), ``codes`` int32 ``(n, F_cat)``
    (``-1`` missing)."""

    numeric: npt.NDArray[np.float64]
    status: npt.NDArray[np.uint8]
    codes: npt.NDArray[np.int32]


class MultivariateSketch(Sketch[ReconstructionState, MultivariateBatch]):
    """The reconstruction error of a model's events from its profile's :class:`Multivariate`.

    ``numeric_index`` and ``categorical_index`` place the PCA's features among the batch's
    columns.
    """

    def __init__(
        self,
        spec: Multivariate,
        numeric_index: Sequence[int],
        categorical_index: Sequence[int],
    ) -> None:
        spec.validate("multivariate")
        if len(numeric_index) != len(spec.numeric) or len(categorical_index) != len(
            spec.categorical
        ):
            raise SketchError("one column index per feature of the multivariate part")
        self.spec = spec
        self.numeric_index = np.asarray(numeric_index, dtype=np.intp)
        self.categorical_index = np.asarray(categorical_index, dtype=np.intp)
        self.fill = np.asarray(spec.fill, dtype=np.float64)
        width = max((len(f) for f in spec.frequencies), default=0)
        # Padded with 0: codes past a feature's own list never reach it (the categorical block
        # refuses them first).
        self.tables = np.zeros((len(spec.frequencies), width))
        for j, f in enumerate(spec.frequencies):
            self.tables[j, : len(f)] = f
        self.inner = ReconstructionSketch(spec.pca, spec.band)
        self.layout = self.inner.layout

    def encode(self, batch: MultivariateBatch) -> npt.NDArray[np.float64]:
        """The PCA's matrix of a batch: numeric values (imputed), then category shares."""
        n = batch.numeric.shape[0]
        f_num = self.numeric_index.size
        x = np.empty((n, f_num + self.categorical_index.size))
        num = batch.numeric[:, self.numeric_index]
        ok = np.isfinite(num) & (batch.status[:, self.numeric_index] == PRESENT)
        x[:, :f_num] = np.where(ok, num, self.fill)
        codes = batch.codes[:, self.categorical_index].astype(np.intp) + 1
        if codes.size and (codes.min() < 0 or codes.max() >= self.tables.shape[1]):
            raise SketchError(
                f"category codes must lie in -1 .. {self.tables.shape[1] - 2} (got "
                f"{int(codes.min()) - 1} .. {int(codes.max()) - 1})"
            )
        x[:, f_num:] = self.tables[np.arange(self.categorical_index.size)[None, :], codes]
        return x

    def empty(self) -> ReconstructionState:
        return self.inner.empty()

    def update(self, state: ReconstructionState, batch: MultivariateBatch) -> ReconstructionState:
        if batch.numeric.shape[0] == 0:
            return state
        return self.inner.update(state, self.encode(batch))

    def merge(self, a: ReconstructionState, b: ReconstructionState) -> ReconstructionState:
        return self.inner.merge(a, b)

    def evaluate(self, state: ReconstructionState, context: Context = NO_CONTEXT) -> list[Result]:
        return self.inner.evaluate(state, context)


class Profiled(Protocol):
    """What has a multivariate part (a :class:`~drifthouse.detectors.reference.Profile`)."""

    @property
    def multivariate(self) -> Multivariate | None: ...


def sketch_for(
    profile: Profiled | None, numeric: Sequence[str], categorical: Sequence[str]
) -> MultivariateSketch | None:
    """The sketch of a profile's multivariate part over a layout's ``numeric`` and
    ``categorical`` feature names; ``None`` without a profile or a part, or when a feature it
    was fitted on is not sketched (a PII feature)."""
    spec = profile.multivariate if profile is not None else None
    if spec is None:
        return None
    num = {name: j for j, name in enumerate(numeric)}
    cat = {name: j for j, name in enumerate(categorical)}
    if any(f not in num for f in spec.numeric) or any(f not in cat for f in spec.categorical):
        return None
    return MultivariateSketch(
        spec, [num[f] for f in spec.numeric], [cat[f] for f in spec.categorical]
    )
