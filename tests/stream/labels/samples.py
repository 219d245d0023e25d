"""Shared inputs of the label tests: prediction records, labels, window specs and a sketch."""

from __future__ import annotations

from drifthouse.detectors.label_sketch import LabelSketch
from drifthouse.events import LabelEvent
from drifthouse.stream.labels import LabelWindow, LabelWindows, PredictionRecord
from drifthouse.stream.windows import WindowSpec

HOUR = 3_600_000


DAY = 24 * HOUR


def rec(eid: str | None, ts: int, score: float = 0.7, **kw: object) -> PredictionRecord:
    return PredictionRecord(
        eid,
        str(kw.get("model", "m")),
        str(kw.get("version", "1")),
        ts,
        score,
        kw.get("cls"),  # type: ignore[arg-type]
        tuple(kw.get("segment", ())),  # type: ignore[arg-type]
    )


def lab(eid: str, ts: int, label: int | float | str = 1, model: str = "m") -> LabelEvent:
    return LabelEvent(event_id=eid, model=model, ts_ms=ts, label=label)


SPECS = [WindowSpec.tumbling(HOUR), WindowSpec(HOUR, 15 * 60_000)]


SK = LabelSketch(task="classification", threshold=0.5, bins=100)


def make_windows() -> LabelWindows:
    return LabelWindows(SPECS, lambda model: SK, horizon_ms=DAY)


def metrics_of(lw: LabelWindows, w: LabelWindow) -> dict[tuple[str, str], float]:
    return {(seg, r.metric): r.value for seg, r in lw.evaluate(w)}
