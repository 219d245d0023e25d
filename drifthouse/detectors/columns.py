"""Column extraction: decoded events of one model become numpy arrays for the sketch kernels.

This is the hot path between decoding and the kernels (see ``bench/``): it touches every
feature value once, so it works with C-level list and array building. Numeric features are
taken event by event (one :func:`operator.itemgetter` call per event, while its feature dict is
in the CPU cache: in the worker, where a micro-batch's dicts do not all fit in the cache, that
beat a pass per feature by 3-10%), typed for the whole batch at once and converted in one numpy
call; categorical features go column by column. Only a column that holds odd types goes value
by value. Events from the fast decoder (:mod:`drifthouse.detectors.typed_decode`) hold their
features in a struct whose types are already checked: they skip the type checks.

Segment values (``{"country": "DE"}``) become, per ``(attribute, value)``, the rows holding it;
a batch without any segment costs one look at each event's ``segment``, which finds none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from drifthouse.categories import category_key
from drifthouse.detectors.base import MISSING, PRESENT, TYPE_ERROR
from drifthouse.detectors.embedding import array_column
from drifthouse.detectors.layout import FeatureLayout
from drifthouse.detectors.reference import prediction_score
from drifthouse.detectors.typed_decode import TypedFeatures
from drifthouse.events.batch_columns import ColumnBatch

__all__ = ["Columns", "FeatureLayout", "concat", "extract", "extract_columns"]

_NUMBER_TYPES = frozenset({float, int, type(None)})


@dataclass
class Columns:
    """One model's micro-batch, column by column, rows in arrival order."""

    ts: npt.NDArray[np.int64]
    numeric: npt.NDArray[np.float64]  # (n, F_num), NaN where missing or odd
    status: npt.NDArray[np.uint8]  # (n, F_num): 0 present, 1 missing, 2 type error
    codes: npt.NDArray[np.int32]  # (n, F_cat): -1 missing, else category code
    latency: npt.NDArray[np.float64]  # NaN where absent
    http_status: npt.NDArray[np.int32]
    score: npt.NDArray[np.float64]  # numeric prediction or positive-class probability; NaN if none
    event_ids: list[str | None] = field(default_factory=list)
    pred_codes: npt.NDArray[np.int32] | None = None  # class-label predictions, when profiled so
    # Per (attribute, value) of the events' segments, its rows (ascending), the values in the
    # order of their first row.
    segments: dict[tuple[str, str], npt.NDArray[np.intp]] = field(default_factory=dict)
    # Multiclass probabilities (n, classes) in ``layout.probability_classes`` order (NaN rows:
    # none usable) and the index of each event's predicted class (-1: another), when laid out.
    proba: npt.NDArray[np.float64] | None = None
    proba_pred: npt.NDArray[np.intp] | None = None
    # Per embedding feature its values (n, dim), and their status (n, F_emb): base's codes and
    # WRONG_LENGTH (drifthouse.detectors.embedding), when the layout has embeddings.
    embeddings: tuple[npt.NDArray[np.float64], ...] = ()
    embedding_status: npt.NDArray[np.uint8] | None = None

    def take(self, idx: npt.NDArray[np.intp]) -> Columns:
        """The rows ``idx`` (distinct), in that order."""
        segments: dict[tuple[str, str], npt.NDArray[np.intp]] = {}
        if self.segments:
            where = np.full(len(self), -1, dtype=np.intp)
            where[idx] = np.arange(len(idx), dtype=np.intp)
            found = []
            for key, rows in self.segments.items():
                sub = where[rows]
                sub = np.sort(sub[sub >= 0])
                if sub.size:
                    found.append((int(sub[0]), key, sub))
            found.sort(key=lambda t: t[0])  # stable: the order of first rows in the new order
            segments = {key: sub for _, key, sub in found}
        return Columns(
            self.ts[idx],
            self.numeric[idx],
            self.status[idx],
            self.codes[idx],
            self.latency[idx],
            self.http_status[idx],
            self.score[idx],
            [self.event_ids[i] for i in idx] if self.event_ids else [],
            None if self.pred_codes is None else self.pred_codes[idx],
            segments,
            None if self.proba is None else self.proba[idx],
            None if self.proba_pred is None else self.proba_pred[idx],
            tuple(e[idx] for e in self.embeddings),
            None if self.embedding_status is None else self.embedding_status[idx],
        )

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def _predictions(
    preds: Sequence[Any], served: Sequence[Any], layout: FeatureLayout
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32] | None]:
    """The prediction scores, and their category codes when the model's predictions are
    categorical: the same for events and for a batch's columns."""
    if set(map(type, preds)) <= _NUMBER_TYPES:
        score = np.array(preds, dtype=np.float64)
    else:
        score = np.array(list(map(_score, preds, served)), dtype=np.float64)
    pred_codes = None
    if layout.prediction_categories is not None:
        cmap, unseen = layout.prediction_categories, layout.prediction_unseen
        keys = [category_key(prediction_score(p, c)) for p, c in zip(preds, served, strict=True)]
        pred_codes = np.array(
            [-1 if k is None else cmap.get(k, unseen) for k in keys], dtype=np.int32
        )
    return score, pred_codes


def _probabilities(
    preds: Sequence[Any], served: Sequence[Any], layout: FeatureLayout
) -> tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.intp] | None]:
    """A multiclass model's probabilities and predicted class indices (performance
    estimation), when its layout names the classes."""
    classes = layout.probability_classes
    if not classes:
        return None, None
    where = {c: j for j, c in enumerate(classes)}
    proba = np.full((len(preds), len(classes)), np.nan)
    for i, p in enumerate(preds):
        if isinstance(p, Mapping):
            for k, v in p.items():
                j = where.get(category_key(k) or "")
                if j is not None and type(v) in _NUMBER_TYPES and v is not None:
                    proba[i, j] = v
    keys = [category_key(prediction_score(p, c)) for p, c in zip(preds, served, strict=True)]
    pred = np.array([where.get(k or "", -1) for k in keys], dtype=np.intp)
    return proba, pred


def _numeric_column(
    values: list[Any], out: npt.NDArray[np.float64], status: npt.NDArray[np.uint8]
) -> None:
    if set(map(type, values)) <= _NUMBER_TYPES:
        out[:] = np.array(values, dtype=np.float64)  # None -> NaN
        status[:] = np.isnan(out)  # JSON has no NaN literal, so NaN here means missing
        return
    for i, v in enumerate(values):  # odd types in this column: value by value
        if v is None:
            out[i], status[i] = np.nan, MISSING
        elif type(v) is float or type(v) is int:
            out[i], status[i] = v, PRESENT
        else:  # strings, bools, anything else in a numeric feature
            out[i], status[i] = np.nan, TYPE_ERROR


_UNKNOWN = -2  # not a code: a value the C-level lookup did not find


def _codes(
    out: npt.NDArray[np.int32],
    col: list[Any],
    known: Mapping[Any, int],
    cmap: Mapping[str, int],
    unseen: int,
) -> None:
    """Codes of one categorical column into ``out``: ``known`` (names and ``None``) looked up
    in C; the values it lacks (another spelling such as ``1.0`` or ``"1.0"`` for ``"1"``, or a
    new category) go through :func:`category_key`."""
    try:
        out[:] = list(map(known.get, col, repeat(_UNKNOWN, len(col))))
    except TypeError:  # an unhashable value (an array): value by value below
        out[:] = [_UNKNOWN if type(v).__hash__ is None else known.get(v, _UNKNOWN) for v in col]
    for i in np.flatnonzero(out == _UNKNOWN).tolist():
        key = category_key(col[i])
        out[i] = -1 if key is None else cmap.get(key, unseen)


def _score(prediction: object, served: object = None) -> float:
    # The profile's rule (detectors.reference.prediction_score), so window and reference agree.
    value = prediction_score(prediction, served)
    if type(value) is float or type(value) is int:
        return float(value)
    return np.nan


def _numeric(
    feats: list[Any], names: tuple[str, ...], column: Callable[[list[Any], str], list[Any]]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
    """``(values, status)`` of the numeric features, each ``(n, len(names))``, C order."""
    n, f_num = len(feats), len(names)
    if n and f_num > 1 and column is _dict_column:  # plain dicts: `[]` cannot add keys
        try:
            rows = list(map(itemgetter(*names), feats))
        except KeyError:  # an event lacks a feature: column by column below
            pass
        else:
            if set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES:
                values = np.array(rows, dtype=np.float64)  # None -> NaN
                # JSON has no NaN literal, so NaN here means missing.
                return values, np.isnan(values).view(np.uint8)
    by_col = np.empty((f_num, n), dtype=np.float64)
    col_status = np.empty((f_num, n), dtype=np.uint8)
    for j, name in enumerate(names):
        _numeric_column(column(feats, name), by_col[j], col_status[j])
    return np.ascontiguousarray(by_col.T), np.ascontiguousarray(col_status.T)


def _dict_column(feats: list[Any], name: str) -> list[Any]:
    return list(map(dict.get, feats, repeat(name, len(feats))))


def _mapping_column(feats: list[Any], name: str) -> list[Any]:
    return [f.get(name) for f in feats]


_Block = tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8], npt.NDArray[np.int32]]


def _general(feats: list[Any], layout: FeatureLayout) -> _Block:
    """Numeric values and status, and category codes, of feature mappings."""
    n = len(feats)
    # dict.get mapped over the batch runs in C; features that are other mappings take `get`.
    column = _dict_column if all(type(f) is dict for f in feats) else _mapping_column
    numeric, status = _numeric(feats, layout.numeric, column)
    codes = np.empty((len(layout.categorical), n), dtype=np.int32)
    for j, name in enumerate(layout.categorical):
        known = layout.codes_with_missing(j)
        _codes(codes[j], column(feats, name), known, layout.categories[j], layout.unseen[j])
    return numeric, status, np.ascontiguousarray(codes.T)


def _typed(feats: list[Any], layout: FeatureLayout) -> _Block:
    """The same from :class:`TypedFeatures` of ``layout``: their decoder already made numeric
    features ``float | None``, so no numeric value is checked."""
    n, f_num, f_cat = len(feats), len(layout.numeric), len(layout.categorical)
    if f_num:
        get = attrgetter(*(f"f{j}" for j in range(f_num)))
        numeric = np.array(list(map(get, feats)), dtype=np.float64).reshape(n, f_num)
    else:
        numeric = np.empty((n, 0), dtype=np.float64)
    status = np.isnan(numeric).view(np.uint8)  # None -> NaN: missing
    codes = np.empty((f_cat, n), dtype=np.int32)
    for j in range(f_cat):
        col = list(map(attrgetter(f"f{f_num + j}"), feats))
        known = layout.codes_with_missing(j)
        _codes(codes[j], col, known, layout.categories[j], layout.unseen[j])
    return numeric, status, np.ascontiguousarray(codes.T)


def _embeddings(
    columns: Sequence[list[Any]], layout: FeatureLayout, n: int
) -> tuple[tuple[npt.NDArray[np.float64], ...], npt.NDArray[np.uint8] | None]:
    """Values and status of the embedding features (:func:`~drifthouse.detectors.embedding.array_column`)."""
    if not layout.embedding:
        return (), None
    status = np.empty((n, len(layout.embedding)), dtype=np.uint8)
    arrays = []
    for j, (col, dim) in enumerate(zip(columns, layout.embedding_dims, strict=True)):
        values, status[:, j] = array_column(col, dim)
        arrays.append(values)
    return tuple(arrays), status


def _has_segment(events: Sequence[Any]) -> bool:
    # The one cost events without a segment pay: about 15 ns an event (an attribute load and a
    # truth test; a 25-feature event costs about 6 us in the worker), stopping at the first hit.
    for e in events:  # noqa: SIM110 - a loop, not any() over a generator: half the time
        if e.segment:
            return True
    return False


def _segments(events: Sequence[Any]) -> dict[tuple[str, str], npt.NDArray[np.intp]]:
    """Per (attribute, value), the rows of the events that hold it, in order of first row."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(events):
        segment = e.segment
        if segment:
            for item in segment.items():
                rows = groups.get(item)
                if rows is None:
                    groups[item] = [i]
                else:
                    rows.append(i)
    return {key: np.array(rows, dtype=np.intp) for key, rows in groups.items()}


def extract(events: Sequence[Any], layout: FeatureLayout) -> Columns:
    """Columns of ``events`` (decoded prediction events of one model) under ``layout``.

    Events need ``ts_ms``, ``features`` (a mapping, or the :class:`TypedFeatures` of the fast
    decoder), ``prediction``, ``predicted_class``, ``latency_ms``, ``status``, ``event_id`` and ``segment`` (a
    mapping, empty for none) attributes.
    """
    feats: list[Any] = [e.features for e in events]
    kind: type[Any] = type(feats[0]) if feats else dict
    if (
        issubclass(kind, TypedFeatures)
        and kind.names == (*layout.numeric, *layout.categorical, *layout.embedding)
        and all(type(f) is kind for f in feats)
    ):
        numeric, status, codes = _typed(feats, layout)
        first = len(kind.names) - len(layout.embedding)
        arrays = [list(map(attrgetter(f"f{first + j}"), feats)) for j in range(kind.embedding)]
    else:
        if any(isinstance(f, TypedFeatures) for f in feats):  # a batch mixing both decodes
            feats = [f.as_dict() if isinstance(f, TypedFeatures) else f for f in feats]
        numeric, status, codes = _general(feats, layout)
        arrays = [_mapping_column(feats, name) for name in layout.embedding]
    embeddings, embedding_status = _embeddings(arrays, layout, len(feats))
    latency = np.array([e.latency_ms for e in events], dtype=np.float64)
    http_status = np.array([e.status for e in events], dtype=np.int32)
    preds = [e.prediction for e in events]
    served = [e.predicted_class for e in events]
    score, pred_codes = _predictions(preds, served, layout)
    proba, proba_pred = _probabilities(preds, served, layout)
    return Columns(
        ts=np.array([e.ts_ms for e in events], dtype=np.int64),
        numeric=numeric,
        status=status,
        codes=codes,
        latency=latency,
        http_status=http_status,
        score=score,
        event_ids=[e.event_id for e in events],
        pred_codes=pred_codes,
        segments=_segments(events) if _has_segment(events) else {},
        proba=proba,
        proba_pred=proba_pred,
        embeddings=embeddings,
        embedding_status=embedding_status,
    )


def _block_numeric(
    block: ColumnBatch, names: tuple[str, ...]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
    """:func:`_numeric` of a batch in columns: one numpy call when every value is a number."""
    n, none = len(block), [None] * len(block)
    cols = [block.features.get(name, none) for name in names]
    if set(map(type, chain.from_iterable(cols))) <= _NUMBER_TYPES:
        by_col = np.array(cols, dtype=np.float64).reshape(len(names), n)  # None -> NaN
        col_status = np.isnan(by_col).view(np.uint8)  # JSON has no NaN: NaN means missing
    else:
        by_col = np.empty((len(names), n), dtype=np.float64)
        col_status = np.empty((len(names), n), dtype=np.uint8)
        for j, col in enumerate(cols):
            _numeric_column(col, by_col[j], col_status[j])
    return np.ascontiguousarray(by_col.T), np.ascontiguousarray(col_status.T)


def _block_segments(block: ColumnBatch) -> dict[tuple[str, str], npt.NDArray[np.intp]]:
    """:func:`_segments` of a batch in columns: keys in the order of their first row, then
    of the attributes in the message (the order a row's segment holds them)."""
    found: list[tuple[int, int, tuple[str, str], list[int]]] = []
    for a, (name, column) in enumerate(block.segment.items()):
        rows: dict[str, list[int]] = {}
        for i, value in enumerate(column):
            if value is not None:
                rows.setdefault(value, []).append(i)
        found += [(r[0], a, (name, value), r) for value, r in rows.items()]
    found.sort(key=lambda t: (t[0], t[1]))
    return {key: np.array(r, dtype=np.intp) for _, _, key, r in found}


def extract_columns(block: ColumnBatch, layout: FeatureLayout) -> Columns:
    """:func:`extract` of the events of ``block`` (a batch in columns), from its columns: the
    same arrays, without an object per event."""
    n, none = len(block), [None] * len(block)
    numeric, status = _block_numeric(block, layout.numeric)
    codes = np.empty((len(layout.categorical), n), dtype=np.int32)
    for j, name in enumerate(layout.categorical):
        col = block.features.get(name, none)
        _codes(codes[j], col, layout.codes_with_missing(j), layout.categories[j], layout.unseen[j])
    statuses = block.status
    http = [200 if s is None else s for s in statuses] if statuses is not None else [200] * n
    preds, served = block.column("prediction"), block.column("predicted_class")
    score, pred_codes = _predictions(preds, served, layout)
    proba, proba_pred = _probabilities(preds, served, layout)
    arrays = [block.features.get(name, none) for name in layout.embedding]
    embeddings, embedding_status = _embeddings(arrays, layout, n)
    return Columns(
        ts=np.array(block.ts, dtype=np.int64),
        numeric=numeric,
        status=status,
        codes=np.ascontiguousarray(codes.T),
        latency=np.array(block.column("latency_ms"), dtype=np.float64),
        http_status=np.array(http, dtype=np.int32),
        score=score,
        event_ids=list(block.column("event_id")),
        pred_codes=pred_codes,
        segments=_block_segments(block) if block.segment else {},
        proba=proba,
        proba_pred=proba_pred,
        embeddings=embeddings,
        embedding_status=embedding_status,
    )


def concat(parts: Sequence[Columns]) -> Columns:
    """The rows of ``parts``, one after another (segments keep the order of first rows)."""
    if len(parts) == 1:
        return parts[0]
    segments: dict[tuple[str, str], list[npt.NDArray[np.intp]]] = {}
    start = 0
    for p in parts:
        for key, rows in p.segments.items():
            segments.setdefault(key, []).append(rows + start)
        start += len(p)
    pred = [p.pred_codes for p in parts]
    return Columns(
        ts=np.concatenate([p.ts for p in parts]),
        numeric=np.concatenate([p.numeric for p in parts]),
        status=np.concatenate([p.status for p in parts]),
        codes=np.concatenate([p.codes for p in parts]),
        latency=np.concatenate([p.latency for p in parts]),
        http_status=np.concatenate([p.http_status for p in parts]),
        score=np.concatenate([p.score for p in parts]),
        event_ids=[e for p in parts for e in p.event_ids],
        pred_codes=None if pred[0] is None else np.concatenate(pred),  # type: ignore[arg-type]
        segments={key: np.concatenate(rows) for key, rows in segments.items()},
        proba=None if parts[0].proba is None else np.concatenate([p.proba for p in parts]),
        proba_pred=None
        if parts[0].proba_pred is None
        else np.concatenate([p.proba_pred for p in parts]),
        embeddings=tuple(
            np.concatenate([p.embeddings[j] for p in parts])
            for j in range(len(parts[0].embeddings))
        ),
        embedding_status=None
        if parts[0].embedding_status is None
        else np.concatenate([p.embedding_status for p in parts]),
    )
