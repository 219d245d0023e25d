"""The label join bounded by bytes: long event ids and segments cannot outgrow the bound."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from drifthouse.stream.labels import LabelJoin, PredictionRecord, decode_records, encode_records
from tests.stream.labels.samples import DAY, lab

BOUND = 4_000_000


def _records(n: int, id_len: int, attributes: int, value_len: int) -> bytes:
    """Records as the merger gets them (decoded from the partials topic: fresh strings)."""
    out = []
    for i in range(n):
        eid = f"order-{i:09d}-".ljust(id_len, "x")
        segment = tuple(
            (
                f"attribute_{k}".ljust(value_len, "a"),
                f"value-{(i * 7 + k) % 13}".ljust(value_len, "b"),
            )
            for k in range(attributes)
        )
        out.append(
            PredictionRecord(
                eid,
                "credit-limit",
                "2026.02.1",
                1_767_225_600_000 + i * 1_000,
                0.25 + (i % 100) / 200,
                None,
                segment,
            )
        )
    return encode_records(out)


@pytest.mark.parametrize(
    ("id_len", "attributes", "value_len"),
    [
        pytest.param(16, 0, 0, id="short-ids"),
        pytest.param(300, 0, 0, id="long-ids"),
        pytest.param(64, 6, 60, id="long-segments"),
    ],
)
def test_held_predictions_stay_under_the_byte_bound(
    id_len: int, attributes: int, value_len: int
) -> None:
    """Measured with tracemalloc: what the join keeps (records, their strings, its indexes)
    never passes ``max_bytes``; the oldest go first and are counted."""
    every = decode_records(_records(40_000, id_len, attributes, value_len))
    chunks = [encode_records(every[k : k + 4_000]) for k in range(0, 40_000, 4_000)]
    del every
    join = LabelJoin(horizon_ms=365 * DAY, max_entries=10_000_000, max_bytes=BOUND)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for chunk in chunks:
            records = decode_records(chunk)
            join.add_predictions(records)
            del records
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
            assert held <= BOUND, f"the join holds {held:,} bytes, over its bound {BOUND:,}"
    finally:
        tracemalloc.stop()
    assert join.held_bytes("credit-limit") <= BOUND
    assert join.stats.evicted_predictions == join.stats.over_bytes > 0
    assert join.stats.over_cap == join.stats.over_bytes
    # The newest are held, the oldest went first.
    newest = 1_767_225_600_000 + 39_999 * 1_000
    assert join.add_labels(
        [lab(f"order-{39_999:09d}-".ljust(id_len, "x"), newest, model="credit-limit")]
    )
    assert not join.add_labels(
        [lab(f"order-{0:09d}-".ljust(id_len, "x"), newest, model="credit-limit")]
    )


def test_byte_estimate_is_an_upper_bound_close_to_the_truth() -> None:
    """The estimate per record is at least what it costs and at most a third more."""
    for id_len, attributes, value_len in [(8, 0, 0), (36, 2, 10), (250, 4, 40)]:
        wire = _records(20_000, id_len, attributes, value_len)
        join = LabelJoin(horizon_ms=365 * DAY)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        join.add_predictions(decode_records(wire))
        gc.collect()
        measured = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        estimated = join.held_bytes("credit-limit")
        assert measured <= estimated <= measured * 4 / 3, (id_len, measured, estimated)


def test_early_labels_count_in_the_bound() -> None:
    join = LabelJoin(horizon_ms=365 * DAY, max_bytes=200_000)
    join.add_labels([lab(f"label-{i:06d}".ljust(200, "z"), i) for i in range(5_000)])
    assert 0 < join.held_bytes("m") <= 200_000
    assert join.stats.unmatched == join.stats.over_bytes > 0


def test_bytes_survive_a_snapshot() -> None:
    join = LabelJoin(horizon_ms=365 * DAY, max_bytes=1_000_000)
    join.add_predictions(decode_records(_records(3_000, 100, 2, 20)))
    restored = LabelJoin.from_bytes(join.to_bytes())
    assert restored.max_bytes == 1_000_000
    assert restored.held_bytes("credit-limit") == join.held_bytes("credit-limit")
    assert vars(restored.stats) == vars(join.stats)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(PredictionRecord("e-1", "m", "1", 0, 0.5, None), id="plain"),
        pytest.param(PredictionRecord("é-1", "m", "1", 0, 0.5, None), id="non-ascii-id"),
        pytest.param(PredictionRecord("e-1", "m", "1", 0, 0.5, "cat"), id="class"),
        pytest.param(PredictionRecord("e-1", "m", "1", 0, 0.5, None, (("a", "b"),)), id="segment"),
        pytest.param(PredictionRecord(None, "m", "1", 0, 0.5, None), id="no-id"),
    ],
)
def test_the_hot_path_size_is_the_records(record: PredictionRecord) -> None:
    """The join's per-prediction shortcut gives :func:`record_bytes`' number, so the held
    bytes go back to zero when everything has left."""
    from drifthouse.stream.labels.records import plain_bytes, record_bytes

    assert plain_bytes(record, {}) == record_bytes(record)
    join = LabelJoin(horizon_ms=1_000)
    join.add_predictions([PredictionRecord("x" * 70, "m", "1", 0, 0.5, None), record])
    join.add_predictions([PredictionRecord("late", "m", "1", 10_000, 0.5, None)])
    assert join.held_bytes("m") == record_bytes(
        PredictionRecord("late", "m", "1", 10_000, 0.5, None)
    )
