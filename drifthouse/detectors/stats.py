"""Drift statistics over count arrays: pure, keyword-only functions.

Each takes the reference and the current counts on the same bins and returns finite numbers.
Empty or one-sided inputs have defined values instead of NaN or infinity (each function says
which); the sketches skip drift metrics for empty windows anyway.

Sources
-------
- PSI: Yurdakul, B. (2018), *Statistical properties of population stability index*,
  Western Michigan University, eq. 1; the ``eps`` floor follows docs/metrics.md.
- Two-sample KS on binned data: the statistic is ``max |F_ref - F_cur|`` over the bin edges
  (Conover, *Practical Nonparametric Statistics*, 3rd ed., §6.3); the p-value is Kolmogorov's
  limiting distribution ``scipy.special.kolmogorov(sqrt(en) * D)`` with ``en = n*m/(n+m)``
  (Smirnov 1948). ``scipy.stats.ks_2samp(method='asymp')`` uses the finite-n
  ``kstwo.sf(D, round(en))`` instead, which agrees to within a few percent for en above ~100
  but takes up to 0.3 s per call at en = 50,000; the limit takes under a microsecond.
- Chi-squared test of homogeneity on a 2 x K contingency table (Agresti, *Categorical Data
  Analysis*, 3rd ed., §3.2), as ``scipy.stats.chi2_contingency(correction=False)``.
- KL divergence: Kullback & Leibler (1951), *On information and sufficiency*, Ann. Math.
  Statist. 22(1); ``KL(q || p) = sum(q * ln(q / p))`` of the current ``q`` relative to the
  reference ``p``, on PSI's bins and floored proportions, so ``psi = kl(p, q) + kl(q, p)``
  (Yurdakul 2018, §2: PSI is Jeffreys' symmetrised divergence).
- Jensen-Shannon distance: Endres & Schindelin (2003), *A new metric for probability
  distributions*, IEEE Trans. Inf. Theory 49(7); base 2, so it lies in [0, 1].
- Wasserstein-1 between two histograms whose mass is uniform inside each bin: the integral of
  ``|F_ref - F_cur|`` over the bounded bins (Villani, *Optimal Transport*, remark 2.19).
- Embeddings: the cosine distance of mean unit vectors; the squared maximum mean discrepancy
  (Gretton et al. 2012, *A kernel two-sample test*, JMLR 13, eq. 3) under a Gaussian kernel
  approximated by random Fourier features (Rahimi & Recht 2007, *Random features for
  large-scale kernel machines*, NIPS), whose null distribution, a weighted sum of chi-squared
  variables, is approximated by a scaled chi-squared matching its first two moments
  (Satterthwaite 1946; Box 1954, *Some theorems on quadratic forms*, Ann. Math. Statist. 25).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from drifthouse.errors import SketchError

__all__ = [
    "chi2_homogeneity",
    "cosine_distance",
    "js_distance",
    "js_terms",
    "kl",
    "ks_binned",
    "mass_shift",
    "psi",
    "psi_terms",
    "rff_mmd2",
    "wasserstein_binned",
]


def _pair(ref_counts: ArrayLike, cur_counts: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    if ref.ndim != 1 or ref.shape != cur.shape:
        raise SketchError(
            f"ref_counts and cur_counts must be 1-D and of equal length (got shapes {ref.shape} and {cur.shape})"
        )
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(cur))):
        raise SketchError("counts must be finite")
    if np.any(ref < 0) or np.any(cur < 0):
        raise SketchError("counts must be non-negative")
    return ref, cur


def _floored(
    ref_counts: ArrayLike, cur_counts: ArrayLike, eps: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """PSI's reference and current proportions raised to ``eps`` (not renormalised); None when
    either side has no counts."""
    ref, cur = _pair(ref_counts, cur_counts)
    if not eps > 0:
        raise SketchError(f"eps must be positive (got {eps})")
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref == 0 or n_cur == 0:
        return None
    return np.maximum(ref / n_ref, eps), np.maximum(cur / n_cur, eps)


def psi_terms(*, ref_counts: ArrayLike, cur_counts: ArrayLike, eps: float = 1e-4) -> np.ndarray:
    """PSI bin by bin: ``(q_i - p_i) * ln(q_i / p_i)`` on the floored proportions of :func:`psi`.

    Every term is >= 0 (both factors share a sign) and their sum is :func:`psi`; all zeros when
    either side has no counts.

    Examples
    --------
    >>> [round(float(t), 4) for t in psi_terms(ref_counts=[50, 50], cur_counts=[90, 10])]
    [0.2351, 0.6438]
    """
    floored = _floored(ref_counts, cur_counts, eps)
    if floored is None:
        return np.zeros(np.asarray(ref_counts).shape, dtype=np.float64)
    p, q = floored
    terms: np.ndarray = (q - p) * np.log(q / p)
    return terms


def psi(*, ref_counts: ArrayLike, cur_counts: ArrayLike, eps: float = 1e-4) -> float:
    """Population stability index: ``sum((cur - ref) * ln(cur / ref))`` over bin proportions.

    Proportions below ``eps`` are raised to ``eps`` (so empty bins cost a bounded amount) and
    not renormalised. Returns 0.0 when either side has no counts.

    Examples
    --------
    >>> psi(ref_counts=[50, 50], cur_counts=[50, 50])
    0.0
    >>> round(psi(ref_counts=[50, 50], cur_counts=[90, 10]), 4)
    0.8789
    """
    return float(np.sum(psi_terms(ref_counts=ref_counts, cur_counts=cur_counts, eps=eps)))


def kl(*, ref_counts: ArrayLike, cur_counts: ArrayLike, eps: float = 1e-4) -> float:
    """KL divergence of the current distribution from the reference, in nats:
    ``sum(q * ln(q / p))`` with ``q`` the current and ``p`` the reference proportions.

    The proportions are :func:`psi`'s: raised to ``eps`` and not renormalised, so
    ``kl(p, q) + kl(q, p) == psi`` on the same counts. Where the floor raised the reference
    more than the window, the value may dip below 0, never below ``sum(q) - sum(p)`` (at most
    ``bins * eps``). Returns 0.0 when either side has no counts.

    Examples
    --------
    >>> kl(ref_counts=[50, 50], cur_counts=[50, 50])
    0.0
    >>> round(kl(ref_counts=[50, 50], cur_counts=[90, 10]), 4)
    0.3681
    """
    floored = _floored(ref_counts, cur_counts, eps)
    if floored is None:
        return 0.0
    p, q = floored
    return float(np.sum(q * np.log(q / p)))


def mass_shift(*, ref_counts: ArrayLike, cur_counts: ArrayLike) -> np.ndarray:
    """Per bin, the signed change of its share of events: ``cur_i / n_cur - ref_i / n_ref``
    (no floor). All zeros when either side has no counts.

    Examples
    --------
    >>> [round(float(x), 2) for x in mass_shift(ref_counts=[50, 50], cur_counts=[90, 10])]
    [0.4, -0.4]
    """
    ref, cur = _pair(ref_counts, cur_counts)
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref == 0 or n_cur == 0:
        return np.zeros(ref.shape, dtype=np.float64)
    shift: np.ndarray = cur / n_cur - ref / n_ref
    return shift


def ks_binned(*, ref_counts: ArrayLike, cur_counts: ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic p-value on shared bins.

    The statistic is the largest gap between the two empirical CDFs at the bin edges, so it is
    at most the exact statistic, and equal to it when no bin holds points of both samples
    between its edges. Returns ``(0.0, 1.0)`` when either side has no counts.

    Examples
    --------
    >>> ks_binned(ref_counts=[10, 10], cur_counts=[20, 0])[0]
    0.5
    """
    ref, cur = _pair(ref_counts, cur_counts)
    n, m = ref.sum(), cur.sum()
    if n == 0 or m == 0:
        return 0.0, 1.0
    d = float(np.max(np.abs(np.cumsum(ref) / n - np.cumsum(cur) / m)))
    d = min(max(d, 0.0), 1.0)
    en = n * m / (n + m)
    from scipy.special import kolmogorov  # SciPy loads at the first evaluation, not at start-up

    p = float(kolmogorov(math.sqrt(en) * d))
    return d, min(max(p, 0.0), 1.0)


def chi2_homogeneity(*, ref_counts: ArrayLike, cur_counts: ArrayLike) -> tuple[float, float, int]:
    """Pearson's chi-squared test that two samples share one categorical distribution.

    Columns empty in both samples are dropped. Returns ``(stat, p_value, dof)`` with
    ``dof = K - 1`` over the remaining ``K`` columns; ``(0.0, 1.0, 0)`` when either side is
    empty or fewer than two columns remain.

    Examples
    --------
    >>> stat, p, dof = chi2_homogeneity(ref_counts=[30, 70], cur_counts=[30, 70])
    >>> (stat, p, dof)
    (0.0, 1.0, 1)
    """
    ref, cur = _pair(ref_counts, cur_counts)
    keep = (ref + cur) > 0
    ref, cur = ref[keep], cur[keep]
    n_ref, n_cur = ref.sum(), cur.sum()
    k = int(ref.shape[0])
    if n_ref == 0 or n_cur == 0 or k < 2:
        return 0.0, 1.0, 0
    total = n_ref + n_cur
    col = ref + cur
    e_ref = col * (n_ref / total)
    e_cur = col * (n_cur / total)
    stat = float(np.sum((ref - e_ref) ** 2 / e_ref) + np.sum((cur - e_cur) ** 2 / e_cur))
    dof = k - 1
    # ``scipy.stats.chi2.sf(stat, dof)`` is this same function on this domain (``stat`` finite
    # and >= 0, ``dof`` >= 1), to the last bit; ``scipy.stats`` takes 0.4 s more to import.
    from scipy.special import chdtrc

    p = float(chdtrc(dof, stat))
    return stat, min(max(p, 0.0), 1.0), dof


def js_distance(*, ref_counts: ArrayLike, cur_counts: ArrayLike) -> float:
    """Jensen-Shannon distance in base 2 (the square root of the divergence), in [0, 1].

    Equals ``scipy.spatial.distance.jensenshannon(ref, cur, base=2)``. Returns 0.0 when
    either side has no counts.

    Examples
    --------
    >>> js_distance(ref_counts=[1, 0], cur_counts=[0, 1])
    1.0
    """
    ref, cur = _pair(ref_counts, cur_counts)
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref == 0 or n_cur == 0:
        return 0.0
    p, q = ref / n_ref, cur / n_cur
    m = (p + q) / 2.0

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    div = (kl(p) + kl(q)) / 2.0
    return float(math.sqrt(min(max(div, 0.0), 1.0)))


def js_terms(*, ref_counts: ArrayLike, cur_counts: ArrayLike) -> np.ndarray:
    """The Jensen-Shannon divergence (base 2) bin by bin:
    ``(p_i * log2(p_i / m_i) + q_i * log2(q_i / m_i)) / 2`` with ``m = (p + q) / 2``.

    Every term is >= 0; their sum is the divergence, the square of :func:`js_distance`. All
    zeros when either side has no counts.

    Examples
    --------
    >>> [float(t) for t in js_terms(ref_counts=[1, 0], cur_counts=[0, 1])]
    [0.5, 0.5]
    """
    ref, cur = _pair(ref_counts, cur_counts)
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref == 0 or n_cur == 0:
        return np.zeros(ref.shape, dtype=np.float64)
    p, q = ref / n_ref, cur / n_cur
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0) / m), 0.0)
        b = np.where(q > 0, q * np.log2(np.where(q > 0, q, 1.0) / m), 0.0)
    # Each term is a sum of two KL summands against the midpoint: >= 0 up to rounding.
    terms: np.ndarray = np.maximum((a + b) / 2.0, 0.0)
    return terms


def wasserstein_binned(
    *,
    edges: ArrayLike,
    ref_counts: ArrayLike,
    cur_counts: ArrayLike,
    lo: float,
    hi: float,
) -> float:
    """Wasserstein-1 distance between two histograms on the same edges.

    ``edges`` are the ``B - 1`` inner edges of ``B`` bins; the open outer bins are closed at
    ``lo`` and ``hi`` (the reference minimum and maximum). Mass is taken as uniform inside each
    bin, so this is the exact distance between those two piecewise-uniform densities, and
    approximates ``scipy.stats.wasserstein_distance`` of the raw samples to within about one bin
    width where the mass moved. Values outside ``[lo, hi]`` count as if at the bound, so a shift
    beyond the reference range is underestimated. Returns 0.0 when either side has no counts.

    Examples
    --------
    >>> wasserstein_binned(edges=[1.0], ref_counts=[1, 0], cur_counts=[0, 1], lo=0.0, hi=2.0)
    1.0
    """
    ref, cur = _pair(ref_counts, cur_counts)
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.shape[0] + 1 != ref.shape[0]:
        raise SketchError(
            f"{ref.shape[0]} bins need {ref.shape[0] - 1} edges (got {e.shape[0] if e.ndim == 1 else e.shape})"
        )
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise SketchError(f"lo and hi must be finite with lo <= hi (got {lo}, {hi})")
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref == 0 or n_cur == 0:
        return 0.0
    bounds = np.concatenate(([lo], np.clip(e, lo, hi), [hi]))
    width = np.diff(bounds)
    # CDF difference at every bound; linear inside each bin.
    g = np.concatenate(([0.0], np.cumsum(ref) / n_ref - np.cumsum(cur) / n_cur))
    a, b = g[:-1], g[1:]
    same = a * b >= 0
    area = np.where(
        same,
        (np.abs(a) + np.abs(b)) / 2.0 * width,
        # The difference crosses zero inside the bin: two triangles.
        (a * a + b * b) / (2.0 * np.maximum(np.abs(a) + np.abs(b), 1e-300)) * width,
    )
    return float(max(np.sum(area), 0.0))


def cosine_distance(*, ref_mean: np.ndarray, cur_mean: np.ndarray) -> float | None:
    """``1 - cos`` of the angle between the reference's and the window's mean unit vectors,
    in [0, 2]; ``None`` when either mean is the zero vector (the vectors cancel out: no
    direction to compare).

    >>> cosine_distance(ref_mean=np.array([1.0, 0.0]), cur_mean=np.array([0.0, 0.5]))
    1.0
    """
    ref, cur = np.asarray(ref_mean, dtype=np.float64), np.asarray(cur_mean, dtype=np.float64)
    norms = float(np.linalg.norm(ref)) * float(np.linalg.norm(cur))
    if not norms > 0:
        return None
    return min(max(1.0 - float(ref @ cur) / norms, 0.0), 2.0)


def rff_mmd2(
    *,
    ref_mean: np.ndarray,
    cur_mean: np.ndarray,
    n_ref: int,
    n_cur: int,
    trace: float,
    trace2: float,
) -> tuple[float, float | None]:
    """MMD² between reference and window from their mean random Fourier features, and its
    p-value.

    ``ref_mean``, ``cur_mean``: the means of ``cos(W x + b)`` (``D`` features); ``trace`` and
    ``trace2``: ``tr C`` and ``tr C²`` of the reference covariance ``C`` of those features.
    With ``delta = cur_mean - ref_mean`` and ``s = 1/n_cur + 1/n_ref``, the estimate is
    ``(2/D) * (|delta|² - s * tr C)``: the squared distance of the two mean embeddings less its
    expected value when both samples come from the reference's distribution, so it is near 0
    without drift whatever the window's size (and may dip below 0). Under no drift
    ``|delta|² / s`` is a weighted sum of chi-squared variables with the eigenvalues of ``C``
    as weights; the p-value takes it as ``a * chi2(nu)`` with ``a = tr C² / tr C`` and
    ``nu = (tr C)² / tr C²`` (same mean and variance). ``None`` when ``tr C`` is 0 (the
    reference is one point).

    >>> mmd2, p = rff_mmd2(ref_mean=np.zeros(2), cur_mean=np.zeros(2), n_ref=100, n_cur=100,
    ...                    trace=1.0, trace2=0.5)
    >>> (mmd2, p)
    (-0.02, 1.0)
    """
    ref, cur = np.asarray(ref_mean, dtype=np.float64), np.asarray(cur_mean, dtype=np.float64)
    if ref.shape != cur.shape or n_ref <= 0 or n_cur <= 0:
        raise SketchError(
            f"rff_mmd2 needs means of one shape and counts > 0 (got {ref.shape}, {cur.shape}, "
            f"{n_ref}, {n_cur})"
        )
    delta = cur - ref
    sq = float(delta @ delta)
    s = 1.0 / n_cur + 1.0 / n_ref
    mmd2 = 2.0 / ref.shape[0] * (sq - s * trace)
    if not (trace > 0 and trace2 > 0):
        return mmd2, None
    from scipy.special import chdtrc

    a, nu = trace2 / trace, trace * trace / trace2
    p = float(chdtrc(nu, sq / s / a))
    return mmd2, min(max(p, 0.0), 1.0)
