"""Change detection over each model's per-window metric series, with river's detectors.

Every closed window of a model yields one value per metric (``error_rate_5xx``,
``latency_p95``, ``accuracy``, ...). :class:`ChangeDetectors` feeds the values of the chosen
series, in window order, to river's ``drift.ADWIN`` (Bifet & Gavaldà 2007: adaptive windowing
with a Hoeffding/Bernstein bound) and ``drift.PageHinkley`` (Page 1954: a cumulative sum of
deviations from the running mean), one pair per (model, model version, window spec, series).

Detectors see **z-scores**: each series is standardised with the mean and standard deviation of
its first ``warmup`` windows (the standard deviation floored at ``min_std``). Raw window
metrics live on very different scales (a 5xx rate near 0.01, a p95 latency in the hundreds of
milliseconds); PageHinkley's threshold is in the units of its input and ADWIN's bound has a
term that assumes values in [0, 1], so raw values leave one detector deaf on small-scale series
and the other jumpy on large ones. A series says nothing during its warm-up. When a detector
fires, both detectors of the series restart and the warm-up begins again: the new level
becomes the baseline instead of firing on every later window.

Each window fed gives one result per series, ``change_detected`` with ``feature`` set to the
series name and value 1.0 when either detector fired, else 0.0 (so rules can clear).
A series is named by its metric for model-level metrics (``error_rate_5xx``) and
``feature:metric`` otherwise (``__prediction__:psi``). A window whose start is not after the last
window fed for its series (a rewrite, a re-delivery after a restart) is skipped: each window is
fed once, in order, and the results depend only on the sequence of windows.

A window written while a partition was idle may be rewritten whole when that partition wakes
(docs/metrics.md, "Importance and change detection"): its values are **deferred** (``update(..., defer=True)``) instead of fed,
updated by each rewrite, and fed in window order by :meth:`ChangeDetectors.release` once no
partition can add to the window. Later windows of a series with deferred windows wait behind them, so every
series is fed the same complete values, in the same order, as a replay.
"""

from __future__ import annotations

import bisect
import math
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from drifthouse.errors import SketchError

if TYPE_CHECKING:
    # The configuration imports this module for ChangeConfig: no numpy for `drifthouse check`.
    from drifthouse.detectors.base import Result

__all__ = ["DEFAULT_CHANGE_SERIES", "ChangeConfig", "ChangeDetectors", "SeriesKey", "series_name"]

#: The series change detection watches by default: serving metrics and the prediction's mean
#: and drift. Label metrics are left out: they are fed when their window is first written, with
#: the labels in by then, so their detections would follow label arrival.
DEFAULT_CHANGE_SERIES = (
    "error_rate_5xx",
    "latency_p95",
    "__prediction__:mean",
    "__prediction__:psi",
)

SeriesKey = tuple[str, str, str, str]  # (model, model_version, window, series)
WindowOf = tuple[str, str, str, int]  # (model, model_version, window, start)
_FORMAT = b"drifthouse-change-v1\x00"


def series_name(feature: str, metric: str) -> str:
    """The name of a metric series: ``metric`` at model level, else ``feature:metric``."""
    return metric if feature == "" else f"{feature}:{metric}"


@dataclass(frozen=True)
class ChangeConfig:
    """Which series to watch and the detectors' parameters (river's names and defaults, except
    ADWIN's ``clock``: one check per window, since a window is already an aggregate).

    The one definition of these settings: the configuration's ``metrics.change_detection``
    (:class:`drifthouse.config.ChangeDetectionConfig`) is these fields plus ``enabled``, and
    checks the bounds written beside each field when it loads (docs/configuration.md).
    """

    series: Annotated[
        tuple[str, ...],
        Field(
            description="model-level metric names, or feature:metric; label metrics (accuracy, "
            "mae, ...) are fed at their window's first write, so their changes depend on label "
            "arrival times"
        ),
    ] = DEFAULT_CHANGE_SERIES
    warmup: Annotated[int, Field(ge=2)] = 30
    min_std: Annotated[float, Field(gt=0.0)] = 1e-3
    adwin_delta: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.002
    adwin_clock: Annotated[int, Field(ge=1)] = 1
    adwin_grace_period: Annotated[int, Field(ge=1)] = 10
    adwin_min_window_length: Annotated[int, Field(ge=1)] = 5
    ph_min_instances: Annotated[int, Field(ge=1)] = 30
    ph_delta: Annotated[float, Field(ge=0.0)] = 0.005
    ph_threshold: Annotated[float, Field(gt=0.0)] = 50.0
    ph_alpha: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9999

    def __post_init__(self) -> None:
        if self.warmup < 2:
            raise SketchError(f"warmup must be at least 2 windows (got {self.warmup})")
        if not self.min_std > 0:
            raise SketchError(f"min_std must be positive (got {self.min_std})")
        if not 0 < self.adwin_delta < 1:
            raise SketchError(f"adwin_delta must be in (0, 1) (got {self.adwin_delta})")


@dataclass
class _Series:
    """One series' warm-up values, standardisation and detectors."""

    warm: list[float] = field(default_factory=list)
    mean: float = math.nan
    std: float = math.nan
    adwin: Any = None
    ph: Any = None
    last_start: int | None = None
    windows: int = 0
    changes: int = 0
    #: Deferred windows, not fed yet: (start, latest value), in start order.
    queued: list[tuple[int, float]] = field(default_factory=list)


class ChangeDetectors:
    """ADWIN and Page-Hinkley per metric series of each model (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from drifthouse.detectors.base import Result
    >>> cd = ChangeDetectors(ChangeConfig(series=("error_rate_5xx",)))
    >>> rng = np.random.default_rng(0)
    >>> rates = np.r_[rng.normal(0.01, 0.002, 100), rng.normal(0.05, 0.002, 20)]
    >>> fired = []
    >>> for i, r in enumerate(rates):
    ...     res = cd.update("m", "1", "1h", i * 3_600_000, [Result("", "error_rate_5xx", r, None, 0, 1)])
    ...     fired += [i for x in res if x.value == 1.0]
    >>> fired[0]  # a 20-sigma jump: Page-Hinkley's sum passes 50 on the third window
    102
    """

    def __init__(self, config: ChangeConfig | None = None) -> None:
        self.config = config or ChangeConfig()
        self._wanted = frozenset(self.config.series)
        self._series: dict[SeriesKey, _Series] = {}

    def _detectors(self, s: _Series) -> None:
        # river (half a second to import) loads when the first series has warmed up.
        from river import drift

        # river's ADWIN constructor is not annotated; call it through an explicitly untyped name.
        adwin: Callable[..., Any] = drift.ADWIN
        c = self.config
        s.adwin = adwin(
            delta=c.adwin_delta,
            clock=c.adwin_clock,
            grace_period=c.adwin_grace_period,
            min_window_length=c.adwin_min_window_length,
        )
        s.ph = drift.PageHinkley(
            min_instances=c.ph_min_instances,
            delta=c.ph_delta,
            threshold=c.ph_threshold,
            alpha=c.ph_alpha,
        )

    def _restart(self, s: _Series) -> None:
        s.warm, s.mean, s.std, s.adwin, s.ph = [], math.nan, math.nan, None, None

    def feed(self, key: SeriesKey, start: int, value: float) -> bool | None:
        """Feed one window's value of one series; ``None`` if skipped or still warming up,
        else whether a change was detected."""
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = _Series()
        if (s.last_start is not None and start <= s.last_start) or not math.isfinite(value):
            return None
        s.last_start = start
        s.windows += 1
        if s.adwin is None:
            s.warm.append(value)
            if len(s.warm) >= self.config.warmup:
                s.mean, std = _mean_std(s.warm)
                s.std = max(std, self.config.min_std)
                self._detectors(s)
            return None
        # A value far beyond the warm-up's spread (a score of 1e300) is as much a change at
        # a million standard deviations as at more: clamped, it cannot overflow the detectors.
        z = min(max((value - s.mean) / s.std, -_Z_MAX), _Z_MAX)
        s.adwin.update(z)
        s.ph.update(z)
        fired = bool(s.adwin.drift_detected or s.ph.drift_detected)
        if fired:
            s.changes += 1
            self._restart(s)
        return fired

    def update(
        self,
        model: str,
        model_version: str,
        window: str,
        start: int,
        results: Iterable[Result],
        *,
        defer: bool = False,
    ) -> list[Result]:
        """Feed a closed window's results; ``change_detected`` results for the series fed.

        ``defer``: the window may still be rewritten; its values wait for :meth:`release`. A
        series with deferred windows defers later ones too, so windows are fed in order.
        """
        out = []
        for r in results:
            name = series_name(r.feature, r.metric)
            if name not in self._wanted:
                continue
            key = (model, model_version, window, name)
            s = self._series.get(key)
            if defer or (s is not None and s.queued):
                self._defer(key, start, r.value)
                continue
            fired = self.feed(key, start, r.value)
            if fired is not None:
                out.append(_result(name, fired, self._series[key].windows))
        return out

    def _defer(self, key: SeriesKey, start: int, value: float) -> None:
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = _Series()
        if s.last_start is not None and start <= s.last_start:
            return  # fed already: a re-delivery
        i = bisect.bisect_left(s.queued, start, key=lambda q: q[0])
        if i < len(s.queued) and s.queued[i][0] == start:
            s.queued[i] = (start, value)  # a rewrite: its latest values
        else:
            s.queued.insert(i, (start, value))

    def deferred(self) -> int:
        """How many windows of all series wait for :meth:`release`."""
        return sum(len(s.queued) for s in self._series.values())

    def release(self, final: Callable[[str, int], bool]) -> dict[WindowOf, list[Result]]:
        """Feed the deferred windows that are final (``final(window, start)``), in order per
        series up to the first that is not; the ``change_detected`` results by window."""
        out: dict[WindowOf, list[Result]] = {}
        for key in sorted(self._series):
            s = self._series[key]
            while s.queued and final(key[2], s.queued[0][0]):
                start, value = s.queued.pop(0)
                fired = self.feed(key, start, value)
                if fired is not None:
                    out.setdefault((*key[:3], start), []).append(_result(key[3], fired, s.windows))
        return out

    def changes(self, key: SeriesKey) -> int:
        """How many changes a series has had."""
        s = self._series.get(key)
        return s.changes if s is not None else 0

    def to_bytes(self) -> bytes:
        """Snapshot every series (river's detectors pickle; read back only what you wrote)."""
        return _FORMAT + pickle.dumps((self.config, self._series), protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> ChangeDetectors:
        """Restore a snapshot written by :meth:`to_bytes` (raise :class:`SketchError` otherwise)."""
        if not data.startswith(_FORMAT):
            raise SketchError("not a drifthouse change-detector snapshot")
        try:  # our own snapshot, from the worker's own state store
            config, series = pickle.loads(data[len(_FORMAT) :])
        except Exception as exc:
            raise SketchError(f"change-detector snapshot cannot be read: {exc}") from exc
        if not isinstance(config, ChangeConfig) or not isinstance(series, dict):
            raise SketchError("change-detector snapshot holds something else")
        for s in series.values():
            if "queued" not in vars(s):  # written before deferred windows existed
                s.queued = []
        out = cls(config)
        out._series = series
        return out


def _result(name: str, fired: bool, n: int) -> Result:
    from drifthouse.detectors.base import Result

    return Result(name, "change_detected", 1.0 if fired else 0.0, None, 0, n)


#: The largest standardised value the detectors are fed (see :meth:`ChangeDetectors.feed`).
_Z_MAX = 1e6


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation of finite ``values``.

    Values up to ``2**500`` in magnitude take the plain formulas (their squares cannot
    overflow); larger ones (a score of ``1e300``) are first scaled by a power of two, which is
    exact, so that neither the sum nor the squares overflow for any finite input.
    """
    top = max(abs(v) for v in values)
    scale = 1.0 if top < _PLAIN else math.ldexp(1.0, math.frexp(top)[1] - 1)
    w = [v / scale for v in values]
    n = len(w)
    mean = math.fsum(w) / n
    var = math.fsum((x - mean) ** 2 for x in w) / n
    return mean * scale, math.sqrt(var) * scale


_PLAIN = math.ldexp(1.0, 500)
