"""PCA reconstruction error over a float matrix (docs/statistics.md, "Multivariate drift").

Generic over ``(events, d)`` float matrices, whatever their columns are (encoded features,
an embedding): :func:`fit_pca` fits a standardiser and a PCA on the reference rows,
:func:`reconstruction_errors` gives each row's error (a Numba kernel), :func:`band_of` the
reference's band from its errors, and :class:`ReconstructionSketch` keeps a window's errors as
an exact, mergeable state and writes their mean with the band.

A row's error is the Euclidean distance between the standardized row ``z`` and its
reconstruction from the ``k`` principal components kept: ``|| (z - m) - C^T C (z - m) ||``
(``m`` the PCA mean, ``C`` the ``(k, d)`` components), as NannyML's
``DataReconstructionDriftCalculator`` computes it with scikit-learn's ``StandardScaler`` and
``PCA`` (``inverse_transform(transform(z))``). The window's sum of errors is kept in integers
(whole parts, and fractions in units of ``2**-32``), so panes, partitions, replays and restarts
add up to the same bits in any order.
"""

from __future__ import annotations

import dataclasses
import math

import msgspec
import numpy as np
import numpy.typing as npt

from drifthouse.detectors import _pca_kernels
from drifthouse.detectors.base import (
    NO_CONTEXT,
    Context,
    Result,
    Sketch,
    State,
    check_same_layout,
    layout_digest,
)
from drifthouse.errors import ProfileError, SketchError

__all__ = [
    "BAND",
    "MIN_CHUNKS",
    "VARIANCE_SHARE",
    "ErrorBand",
    "Pca",
    "ReconstructionSketch",
    "ReconstructionState",
    "band_of",
    "fit_pca",
    "reconstruction_errors",
]

#: The share of the standardized variance the components kept explain (NannyML's default
#: ``n_components=0.65``).
VARIANCE_SHARE = 0.65
#: Width of the band in spreads (NannyML's ``StandardDeviationThreshold``: 3).
BAND = 3.0
#: A chunk size enters the band when the reference holds at least this many chunks of it.
MIN_CHUNKS = 10
_STEPS = (1, 2, 5)  # chunk sizes 1, 2, 5, 10, 20, 50, ...


class Pca(msgspec.Struct, frozen=True, kw_only=True):
    """A standardiser and a PCA fitted on a reference matrix of ``d`` columns.

    ``center`` and ``scale`` are the columns' means and population standard deviations
    (``1`` for a constant column, as scikit-learn's ``StandardScaler``); ``mean`` is the PCA's
    mean of the standardized rows; ``components`` the ``k`` principal axes (unit rows, largest
    variance first) explaining ``explained`` of the variance, the fewest whose share reaches
    ``variance_share``.
    """

    center: list[float]
    scale: list[float]
    mean: list[float]
    components: list[list[float]]
    variance_share: float
    explained: float

    @property
    def width(self) -> int:
        return len(self.center)

    def validate(self, where: str) -> None:
        """Raise :class:`ProfileError` if the parts disagree."""
        d = self.width
        if d < 2 or len(self.scale) != d or len(self.mean) != d:
            raise ProfileError(
                f"{where}: center, scale and mean must have one value per column (at least 2; "
                f"got {len(self.center)}, {len(self.scale)} and {len(self.mean)})"
            )
        if not self.components or any(len(c) != d for c in self.components):
            raise ProfileError(
                f"{where}: components must be rows of {d} values (got "
                f"{[len(c) for c in self.components]})"
            )
        if any(s <= 0 or not math.isfinite(s) for s in self.scale):
            raise ProfileError(f"{where}: scale must be positive and finite (got {self.scale})")


class ErrorBand(msgspec.Struct, frozen=True, kw_only=True):
    """The reference's reconstruction errors in chunks: for each chunk size in ``sizes``
    (events), the mean (``centers``) and population standard deviation (``spreads``) of the
    means of the reference's consecutive chunks of that size (an incomplete last chunk left
    out). ``events`` counts the reference rows."""

    events: int
    sizes: list[int]
    centers: list[float]
    spreads: list[float]

    def validate(self, where: str) -> None:
        if not self.sizes or not (len(self.sizes) == len(self.centers) == len(self.spreads)):
            raise ProfileError(
                f"{where}: sizes, centers and spreads must be non-empty and of one length (got "
                f"{len(self.sizes)}, {len(self.centers)} and {len(self.spreads)})"
            )
        if any(b <= a for a, b in zip(self.sizes, self.sizes[1:], strict=False)) or (
            self.sizes[0] < 1
        ):
            raise ProfileError(f"{where}: sizes must be positive and increasing ({self.sizes})")

    def at(self, n: int) -> tuple[float, float]:
        """``(center, spread)`` for a window of ``n`` events: a stored size's own; between two
        sizes, interpolated linearly in ``log n`` (the spread's logarithm too); past the
        largest, its center and its spread times ``sqrt(largest / n)`` (the spread of a mean of
        ``n`` independent errors)."""
        sizes = self.sizes
        if n <= sizes[0]:
            return self.centers[0], self.spreads[0]
        if n >= sizes[-1]:
            return self.centers[-1], self.spreads[-1] * math.sqrt(sizes[-1] / n)
        j = int(np.searchsorted(np.asarray(sizes), n, side="right")) - 1
        if sizes[j] == n:
            return self.centers[j], self.spreads[j]
        t = (math.log(n) - math.log(sizes[j])) / (math.log(sizes[j + 1]) - math.log(sizes[j]))
        center = self.centers[j] + t * (self.centers[j + 1] - self.centers[j])
        lo, hi = self.spreads[j], self.spreads[j + 1]
        if lo > 0 and hi > 0:
            spread = math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))
        else:
            spread = lo + t * (hi - lo)
        return center, spread

    def reference_spread(self) -> float:
        """The sampling error of the reference's own mean error: the spread of a mean of all
        ``events`` reference errors, ``σ(S) · sqrt(S / events)`` from the largest chunk size
        ``S`` (chunks keep what the errors' order holds, e.g. autocorrelation)."""
        return self.spreads[-1] * math.sqrt(self.sizes[-1] / self.events)

    def window_spread(self, n: int) -> float:
        """The spread a window of ``n`` events is judged by: its own (:meth:`at`) and the
        reference mean's (:meth:`reference_spread`) in quadrature, ``sqrt(σ(n)² + σ_ref²)``.
        The window's mean and the reference's are two independent estimates of one mean: past
        the reference's size the window's spread alone would shrink to nothing while the
        reference's stays."""
        return math.hypot(self.at(n)[1], self.reference_spread())


def fit_pca(
    matrix: npt.NDArray[np.float64], *, variance_share: float = VARIANCE_SHARE
) -> Pca | None:
    """Fit the standardiser and the PCA on finite reference rows (``(n, d)``); ``None`` when
    the components needed for ``variance_share`` are all of them (``d < 2``, or columns so
    independent that nothing is left to reconstruct: every error would be 0).

    The components are the eigenvectors of the standardized rows' covariance matrix, largest
    eigenvalue first; ``k`` is scikit-learn's for a float ``n_components``: one more than the
    number of cumulative variance ratios at or below the share.
    """
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2:
        raise ProfileError(f"a PCA is fitted on a matrix (events, columns) (got shape {x.shape})")
    n, d = x.shape
    if not 0.0 < variance_share < 1.0:
        raise ProfileError(f"variance_share must be in (0, 1) (got {variance_share})")
    if not np.isfinite(x).all():
        raise ProfileError("a PCA is fitted on finite values: impute missing values first")
    if d < 2 or n < 2:
        return None
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    # StandardScaler's rule for (near) constant columns: leave them unscaled.
    scale = np.where(scale < 10 * np.finfo(np.float64).eps * np.abs(center), 1.0, scale)
    scale = np.where(scale == 0.0, 1.0, scale)
    z = (x - center) / scale
    mean = z.mean(axis=0)
    zc = z - mean
    values, vectors = np.linalg.eigh(zc.T @ zc / (n - 1))
    order = np.argsort(values)[::-1]
    values = np.clip(values[order], 0.0, None)
    vectors = vectors[:, order]
    total = float(values.sum())
    if total <= 0:
        return None
    cumulative = np.cumsum(values / total)
    k = min(int(np.searchsorted(cumulative, variance_share, side="right")) + 1, d)
    if k >= d:
        return None
    components = vectors[:, :k].T
    # A deterministic sign: the largest entry of each axis positive (the error ignores signs).
    flip = np.sign(components[np.arange(k), np.argmax(np.abs(components), axis=1)])
    components = components * flip[:, None]
    return Pca(
        center=[float(v) for v in center],
        scale=[float(v) for v in scale],
        mean=[float(v) for v in mean],
        components=[[float(v) for v in row] for row in components],
        variance_share=float(variance_share),
        explained=float(cumulative[k - 1]),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Arrays:
    center: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    components: npt.NDArray[np.float64]

    @classmethod
    def of(cls, pca: Pca) -> _Arrays:
        return cls(
            np.asarray(pca.center, dtype=np.float64),
            np.asarray(pca.scale, dtype=np.float64),
            np.asarray(pca.mean, dtype=np.float64),
            np.ascontiguousarray(pca.components, dtype=np.float64),
        )


def reconstruction_errors(
    pca: Pca, matrix: npt.NDArray[np.float64], *, arrays: _Arrays | None = None
) -> npt.NDArray[np.float64]:
    """Each row's reconstruction error (``(n,)``); rows are finite (imputed) values of the
    PCA's columns."""
    x = np.ascontiguousarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != pca.width:
        raise SketchError(
            f"the PCA was fitted on {pca.width} columns: expected a matrix (events, "
            f"{pca.width}) (got shape {x.shape})"
        )
    a = arrays or _Arrays.of(pca)
    out = np.empty(x.shape[0])
    _pca_kernels._reconstruction_errors(x, a.center, a.scale, a.mean, a.components, out)
    return out


def band_of(errors: npt.NDArray[np.float64], *, min_chunks: int = MIN_CHUNKS) -> ErrorBand:
    """The band of the reference's errors (in their order) over chunk sizes 1, 2, 5, 10, 20,
    50, ... up to ``len(errors) // min_chunks``."""
    e = np.asarray(errors, dtype=np.float64)
    n = e.size
    if n < min_chunks:
        raise ProfileError(f"a band needs at least {min_chunks} reference errors (got {n})")
    sizes: list[int] = []
    centers: list[float] = []
    spreads: list[float] = []
    power = 1
    while True:
        for step in _STEPS:
            size = step * power
            if size > n // min_chunks:
                return ErrorBand(events=n, sizes=sizes, centers=centers, spreads=spreads)
            chunks = n // size
            means = e[: chunks * size].reshape(chunks, size).mean(axis=1)
            sizes.append(size)
            centers.append(float(np.mean(means)))
            spreads.append(float(np.std(means)))
        power *= 10


@dataclasses.dataclass(frozen=True, eq=False)
class ReconstructionState(State):
    """``sums`` int64 ``[events, whole, fraction]``: the window's events and the sum of their
    errors, whole parts and fractions in units of ``2**-32``."""

    sums: np.ndarray


class ReconstructionSketch(Sketch[ReconstructionState, npt.NDArray[np.float64]]):
    """A window's mean reconstruction error under a reference :class:`Pca`, with its band.

    Batches are float matrices ``(n, d)`` of finite values in the PCA's column order.
    ``evaluate`` writes ``<metric>`` (the mean error), ``<metric>_lower`` and ``_upper`` (the
    reference band at the window's size: center minus and plus three
    :meth:`ErrorBand.window_spread`, the lower end at least 0) and ``<metric>_z`` (the distance from the center in spreads; none when the spread
    is 0); nothing for a window without events.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=2_000)
    >>> ref = np.column_stack([a, a + 0.3 * rng.normal(size=2_000)])
    >>> pca = fit_pca(ref)
    >>> sk = ReconstructionSketch(pca, band_of(reconstruction_errors(pca, ref)))
    >>> flipped = np.column_stack([a[:500], -a[:500]])
    >>> got = {r.metric: r.value for r in sk.evaluate(sk.update(sk.empty(), flipped))}
    >>> round(got["reconstruction_error"], 2), got["reconstruction_error_z"] >= 3
    (1.12, True)
    """

    def __init__(self, pca: Pca, band: ErrorBand, *, metric: str = "reconstruction_error") -> None:
        pca.validate("pca")
        band.validate("band")
        self.pca = pca
        self.band = band
        self.metric = metric
        self._arrays = _Arrays.of(pca)
        a = self._arrays
        self.layout = layout_digest("pca", a.center, a.scale, a.mean, a.components)

    def empty(self) -> ReconstructionState:
        return ReconstructionState(layout=self.layout, sums=np.zeros(3, dtype=np.int64))

    def update(
        self, state: ReconstructionState, batch: npt.NDArray[np.float64]
    ) -> ReconstructionState:
        """Add the rows' errors, in place."""
        errors = reconstruction_errors(self.pca, batch, arrays=self._arrays)
        _pca_kernels._accumulate(errors, state.sums)
        return state

    def merge(self, a: ReconstructionState, b: ReconstructionState) -> ReconstructionState:
        check_same_layout("ReconstructionSketch", self.layout, a, b)
        return ReconstructionState(layout=self.layout, sums=a.sums + b.sums)

    @staticmethod
    def mean(state: ReconstructionState) -> float | None:
        """The window's mean error (``None`` without events), correctly rounded from the
        integer sums."""
        events, whole, frac = (int(v) for v in state.sums)
        if events == 0:
            return None
        scale = int(_pca_kernels.FRACTION)
        return (whole * scale + frac) / (events * scale)

    def evaluate(self, state: ReconstructionState, context: Context = NO_CONTEXT) -> list[Result]:
        value = self.mean(state)
        if value is None:
            return []
        n = int(state.sums[0])
        ref = self.band.events
        center, _ = self.band.at(n)
        spread = self.band.window_spread(n)
        m = self.metric
        out = [
            Result("", m, value, None, ref, n),
            Result("", f"{m}_lower", max(0.0, center - BAND * spread), None, ref, n),
            Result("", f"{m}_upper", center + BAND * spread, None, ref, n),
        ]
        if spread > 0:
            out.append(Result("", f"{m}_z", (value - center) / spread, None, ref, n))
        return out
