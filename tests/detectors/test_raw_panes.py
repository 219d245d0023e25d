"""Panes that keep their events until the model's automatic reference is built: exact on the
wire, and a clear error for bytes that are not such a pane."""

from __future__ import annotations

import pytest

from drifthouse.config import MetricsConfig
from drifthouse.detectors.columns import extract
from drifthouse.detectors.model_sketch import LATE, ModelBatch, ModelSketch, ModelState
from drifthouse.detectors.raw_panes import RawLeaf, decode_tree, encode_events, leaves
from drifthouse.errors import SketchError
from drifthouse.events import PredictionEvent


def _events(n: int, offset: int = 0) -> list[PredictionEvent]:
    return [
        PredictionEvent(
            model="m",
            ts_ms=1_000 * i,
            features={"x": float(i % 7) + 0.1, "c": "ab"[i % 2], "b": i % 3 == 0, "n": None},
            prediction=0.25 if i % 2 else {"yes": 0.6, "no": 0.4},
            latency_ms=float(i),
            segment={"country": "DE" if i % 2 else "FR"},
        )
        for i in range(offset, offset + n)
    ]


def _pane(sketch: ModelSketch, events: list[PredictionEvent]) -> ModelState:
    state = sketch.empty()
    state = sketch.update(state, ModelBatch(extract(events, sketch.layout), encode_events(events)))
    return sketch.count(state, LATE, 2)


def test_a_merged_state_keeps_its_events_and_merges_on_the_wire() -> None:
    sketch = ModelSketch("m", None, MetricsConfig(), auto_span=3_600_000)
    assert sketch.collects_raw
    a, b = _pane(sketch, _events(5)), _pane(sketch, _events(3, offset=5))
    merged = sketch.merge(a, b)
    assert merged.raw is not None
    assert [len(leaf.events) for leaf in leaves(merged.raw)] == [5, 3]
    assert [leaf.late for leaf in leaves(merged.raw)] == [2, 2]
    again = ModelState.from_bytes(merged.to_bytes())
    assert again.equals(merged)
    assert not again.equals(a)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"not zlib", id="not-compressed"),
        pytest.param(__import__("zlib").compress(b"\x93\x07\x01\x02"), id="wrong-shape"),
    ],
)
def test_foreign_bytes_are_a_sketch_error(data: bytes) -> None:
    with pytest.raises(SketchError, match="raw pane tree"):
        decode_tree(data)


def test_a_pane_keeping_events_needs_them() -> None:
    sketch = ModelSketch("m", None, MetricsConfig(), auto_span=3_600_000)
    events = _events(2)
    with pytest.raises(
        SketchError, match="expected the 2 encoded events of the batch and a pane, got 0"
    ):
        sketch.update(sketch.empty(), ModelBatch(extract(events, sketch.layout)))
    assert isinstance(sketch.empty().raw, RawLeaf)
