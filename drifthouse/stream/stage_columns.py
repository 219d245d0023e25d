"""The partition stage's path for batches in columns (docs/events.md, "Batched messages").

A micro-batch of valid batches, in rows or in columns (:attr:`drifthouse.events.Decoded.blocks`),
goes from its columns to the sketch's arrays (:func:`~drifthouse.detectors.columns.extract_columns`)
and to the label join's records without an object per event, PII hashed column by column
(:meth:`drifthouse.pii.PiiFields.protect_block`); only the panes of a model whose automatic
reference is being built get the events themselves (:func:`events`). The results are those
of its events decoded one by one (tests/stream/test_stage_columns.py).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Collection, Sequence
from itertools import accumulate, chain

import numpy as np
import numpy.typing as npt

from drifthouse.detectors.columns import Columns, FeatureLayout, concat, extract_columns
from drifthouse.events import PredictionEvent
from drifthouse.events.batch_columns import ColumnBatch, joined
from drifthouse.stream.labels.records import PredictionRecord

__all__ = ["Blocks", "events", "groups", "index", "records"]

Key = tuple[str, str]
Blocks = Sequence[tuple[int, ColumnBatch]]


def index(blocks: Blocks) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[str]]:
    """Per event of the blocks, in order: its time, its message's position and its model."""
    lengths = [len(b) for _, b in blocks]
    ts = np.fromiter(chain.from_iterable(b.ts for _, b in blocks), np.int64, sum(lengths))
    positions = np.repeat(np.array([p for p, _ in blocks], dtype=np.int64), lengths)
    models: list[str] = []
    for _, b in blocks:
        models += [b.model] * len(b)
    return ts, positions, models


def records(
    blocks: Blocks, on_time: Sequence[bool], unlabelled: Collection[str]
) -> tuple[list[int], list[PredictionRecord]]:
    """The label join's records of the on-time events with an ``event_id`` of models with
    labels, and their messages' positions."""
    positions: list[int] = []
    out: list[PredictionRecord] = []
    start = 0
    for pos, b in blocks:
        ids = b.event_id
        if ids is None or b.model in unlabelled:
            start += len(b)
            continue
        pred, served = b.column("prediction"), b.column("predicted_class")
        if not b.segment and b.predicted_class is None and _plain(pred):
            # The usual case: a number per prediction, no segment (PredictionRecord.of's rule).
            model, version, ts, make = b.model, b.model_version, b.ts, PredictionRecord
            chosen = [j for j, eid in enumerate(ids) if eid and on_time[start + j]]
            positions += [pos] * len(chosen)
            out += [make(ids[j], model, version, ts[j], float(pred[j]), None) for j in chosen]
        else:
            for j, eid in enumerate(ids):
                if eid and on_time[start + j]:
                    positions.append(pos)
                    segment = b.segment_of(j) if b.segment else {}
                    out.append(
                        PredictionRecord.of(
                            eid, b.model, b.model_version, b.ts[j], pred[j], served[j], segment
                        )
                    )
        start += len(b)
    return positions, out


def _plain(values: list[object]) -> bool:
    """Whether every value is a float or an int (not a bool, not ``None``)."""
    return set(map(type, values)) <= _NUMBERS


_NUMBERS = frozenset({float, int})


def groups(
    blocks: Blocks, on_time: npt.NDArray[np.bool_], layout: Callable[[str], FeatureLayout]
) -> list[tuple[Key, list[int], Columns]]:
    """Per model and version (in order of first event): its on-time events (their indices)
    and their columns."""
    parts: dict[Key, list[tuple[int, ColumnBatch]]] = {}
    start = 0
    for _, b in blocks:
        parts.setdefault((b.model, b.model_version), []).append((start, b))
        start += len(b)
    out = []
    for key, found in parts.items():
        rows = np.concatenate([np.arange(s, s + len(b)) for s, b in found])
        keep = on_time[rows]
        if not keep.any():
            continue
        one = joined([b for _, b in found])  # one call for the chunk: a tenth of the cost
        if one is not None:
            cols = extract_columns(one, layout(key[0]))
        else:
            cols = concat([extract_columns(b, layout(key[0])) for _, b in found])
        if not keep.all():
            cols, rows = cols.take(np.flatnonzero(keep)), rows[keep]
        out.append((key, rows.tolist(), cols))
    return out


def events(blocks: Blocks, rows: Sequence[int]) -> list[PredictionEvent]:
    """Events ``rows`` of the concatenation of ``blocks``, built from their columns (for the
    panes of a model whose automatic reference is being built: they keep its events)."""
    starts = list(accumulate((len(b) for _, b in blocks), initial=0))
    out = []
    for i in rows:
        k = bisect_right(starts, i) - 1
        out.append(blocks[k][1].event(i - starts[k]))
    return out
