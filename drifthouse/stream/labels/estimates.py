"""The estimated metrics of each prediction window, held for its label windows: when labels
arrive, the realized metric is written with ``estimation_error_<metric> = estimated -
realized`` beside it (docs/model-performance.md, "Performance without labels").

The merge stage notes each prediction window's model-level ``estimated_*`` rows as it writes
them; :class:`~drifthouse.stream.labels.stage.LabelStage` adds the errors to the rows of every
label window it (re)writes. An estimate is held until its window ended two label horizons
before the prediction watermark, when no label can change the window any more.

A derived window (docs/configuration.md "windows") may be written after its label window: it
waits for its stored base states (a store away, rows still in the spool). So the realized
metrics of such label windows are held too (``keep`` in :meth:`HeldEstimates.errors`), and
noting the estimate later gives the errors then (:meth:`HeldEstimates.note`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from drifthouse.errors import SketchError
from drifthouse.rows import MetricRow

__all__ = ["ERROR_PREFIX", "METRICS", "HeldEstimates"]

#: The metrics both estimated (``estimated_<m>``) and realized from labels (``<m>``).
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse")
ERROR_PREFIX = "estimation_error_"
_ESTIMATED = {f"estimated_{m}": m for m in METRICS}

Key = tuple[str, int, str, str]  # window name, start, model, model version


class _Held(msgspec.Struct, array_like=True):
    window: str
    start: int
    end: int
    model: str
    version: str
    #: The estimates, by metric (``mae`` for ``estimated_mae``).
    values: dict[str, float]
    #: The realized metrics last written (value, n), of windows whose estimate may come later.
    realized: dict[str, tuple[float, int]] = {}


class HeldEstimates:
    """Estimates by window, and the errors of the realized metrics against them."""

    def __init__(self) -> None:
        self._held: dict[Key, _Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    def note(self, rows: Iterable[MetricRow]) -> list[MetricRow]:
        """Keep the model-level ``estimated_<m>`` values of a prediction window's rows (a
        rewrite of the window replaces them); return the ``estimation_error_<m>`` of those new
        or changed whose realized metric is held (its label window was written first)."""
        out = []
        for r in rows:
            metric = _ESTIMATED.get(r.metric)
            if metric is None or r.segment or r.feature:
                continue
            held = self._get(r.window, r.window_start, r.window_end, r.model, r.model_version)
            before = held.values.get(metric)
            held.values[metric] = r.value
            realized = held.realized.get(metric)
            if realized is not None and before != r.value:
                error = r.value - realized[0]
                out.append(
                    msgspec.structs.replace(
                        r, metric=ERROR_PREFIX + metric, value=error, n=realized[1]
                    )
                )
        return out

    def _get(self, window: str, start: int, end: int, model: str, version: str) -> _Held:
        key = (window, start, model, version)
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held(window, start, end, model, version, {})
        return held

    def errors(self, rows: Sequence[MetricRow], *, keep: bool = False) -> list[MetricRow]:
        """``estimation_error_<m>`` for each model-level realized metric in a label window's
        rows whose prediction window was estimated; ``keep``: hold the realized values for an
        estimate noted later (a derived window's)."""
        out = []
        for r in rows:
            if r.metric not in METRICS or r.segment or r.feature:
                continue
            key = (r.window, r.window_start, r.model, r.model_version)
            held = self._held.get(key)
            if keep:
                held = self._get(r.window, r.window_start, r.window_end, r.model, r.model_version)
                held.realized[r.metric] = (r.value, r.n)
            if held is None or r.metric not in held.values:
                continue
            out.append(
                msgspec.structs.replace(
                    r, metric=ERROR_PREFIX + r.metric, value=held.values[r.metric] - r.value
                )
            )
        return out

    def forget(self, ready_until: int, horizon_ms: int) -> None:
        """Drop the estimates of windows that ended two horizons before ``ready_until``."""
        gone = [k for k, h in self._held.items() if h.end + 2 * horizon_ms < ready_until]
        for k in gone:
            del self._held[k]

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode(
            sorted(self._held.values(), key=lambda h: (h.window, h.start, h.model, h.version))
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> HeldEstimates:
        try:
            held = msgspec.msgpack.decode(data, type=list[_Held])
        except msgspec.DecodeError as exc:
            raise SketchError(f"not serialised held estimates: {exc}") from exc
        out = cls()
        out._held = {(h.window, h.start, h.model, h.version): h for h in held}
        return out
