"""The estimated metrics of each prediction window, held for its label windows: when labels
arrive, the realized metric is written with ``estimation_error_<metric> = estimated -
realized`` beside it (docs/model-performance.md, "Performance without labels").

The merge stage notes each prediction window's model-level ``estimated_*`` rows as it writes
them; :class:`~drifthouse.stream.labels.stage.LabelStage` adds the errors to the rows of every
label window it (re)writes. An estimate is held until its window ended two label horizons
before the prediction watermark, when no label can change the window any more.
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
    values: dict[str, float]


class HeldEstimates:
    """Estimates by window, and the errors of the realized metrics against them."""

    def __init__(self) -> None:
        self._held: dict[Key, _Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    def note(self, rows: Iterable[MetricRow]) -> None:
        """Keep the model-level ``estimated_<m>`` values of a prediction window's rows (a
        rewrite of the window replaces them)."""
        for r in rows:
            metric = _ESTIMATED.get(r.metric)
            if metric is None or r.segment or r.feature:
                continue
            key = (r.window, r.window_start, r.model, r.model_version)
            held = self._held.get(key)
            if held is None:
                held = self._held[key] = _Held(
                    r.window, r.window_start, r.window_end, r.model, r.model_version, {}
                )
            held.values[metric] = r.value

    def errors(self, rows: Sequence[MetricRow]) -> list[MetricRow]:
        """``estimation_error_<m>`` for each model-level realized metric in a label window's
        rows whose prediction window was estimated."""
        out = []
        for r in rows:
            if r.metric not in METRICS or r.segment or r.feature:
                continue
            held = self._held.get((r.window, r.window_start, r.model, r.model_version))
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
