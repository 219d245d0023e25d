"""Direct loss estimation (DLE): a regression model's MAE and RMSE estimated per window from
its features and predictions alone (docs/model-performance.md, "Regression without labels").

The profile of a labelled regression reference holds a :class:`LossModel`: an additive model
of each event's absolute error ``|y - y_hat|`` and squared error ``(y - y_hat)**2``, a table of
contributions per bin of each feature (the profile's own fine grid, categories, a slot for
missing values) and of the prediction, fitted at profile time
(:mod:`drifthouse.detectors.dle_fit`). Per event the sketch adds the intercept and one
contribution per feature, floors the sum at 0 and adds it in fixed point (units of
``unit_abs`` / ``unit_sq``, at most ``2**31`` units per event) to integer sums: panes,
partitions and replays merge to the same bits in any order. The window's estimates are
``estimated_mae = sum |loss| / n`` and ``estimated_rmse = sqrt(sum loss**2 / n)``, NannyML's
DLE with a LightGBM model replaced by the additive one, and NannyML's sampling-error band.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from drifthouse.detectors._dle_kernels import dle_update
from drifthouse.detectors.base import NO_CONTEXT, PRESENT, Context, Result, Sketch, State
from drifthouse.errors import ProfileError, SketchError

__all__ = [
    "BAND",
    "CAP",
    "DleBatch",
    "DleSketch",
    "DleState",
    "LossModel",
    "batch_of_columns",
    "sketch_for",
    "slots_of",
]

#: Width of the band in sampling errors (NannyML's ``SAMPLING_ERROR_RANGE``).
BAND = 3.0
#: Fixed-point units one event's loss can take at most (int64 sums hold 2**32 such events).
CAP = float(2**31)


class LossModel(msgspec.Struct, frozen=True, kw_only=True):
    """The additive loss model of a regression profile.

    The features are the numeric ones, the categorical ones, then the prediction (as a numeric
    feature). The terms are one per feature on its fine slots (numeric: ``len(edges) + 2``
    slots, missing then the bins ``edges[i-1] <= v < edges[i]``; categorical: ``K + 3`` slots,
    missing, the ``K`` top categories, other, new), then one per pair of features in ``pairs``
    on their coarse slots (numeric: the ``coarse_edges``, the profile's PSI grid; categorical:
    the same slots), slot ``a * size_b + b``. Tables are laid out term after term.
    ``mae_std``, ``se_std`` and ``se_mean`` are NannyML's sampling-error components of the
    reference (the spread of the absolute errors; of the squared errors, and their mean).
    """

    numeric: list[str]
    numeric_edges: list[list[float]]
    numeric_coarse: list[list[float]]
    categorical: list[str]
    categories: list[int]
    prediction_edges: list[float]
    prediction_coarse: list[float]
    pairs: list[tuple[int, int]]
    intercept_abs: float
    intercept_sq: float
    table_abs: list[float]
    table_sq: list[float]
    unit_abs: float
    unit_sq: float
    events: int
    mae_std: float
    se_std: float
    se_mean: float

    @property
    def fine_sizes(self) -> list[int]:
        """Fine slots per feature (numeric, categorical, prediction)."""
        return (
            [len(e) + 2 for e in self.numeric_edges]
            + [k + 3 for k in self.categories]
            + [len(self.prediction_edges) + 2]
        )

    @property
    def coarse_sizes(self) -> list[int]:
        """Coarse slots per feature."""
        return (
            [len(e) + 2 for e in self.numeric_coarse]
            + [k + 3 for k in self.categories]
            + [len(self.prediction_coarse) + 2]
        )

    @property
    def sizes(self) -> list[int]:
        """Slots per term, in table order."""
        coarse = self.coarse_sizes
        return self.fine_sizes + [coarse[a] * coarse[b] for a, b in self.pairs]

    def validate(self, where: str = "loss_model") -> LossModel:
        """Check the parts agree; return the model, or raise :class:`ProfileError`."""
        problems = []
        nf = len(self.numeric)
        if len(self.numeric_edges) != nf or len(self.numeric_coarse) != nf:
            problems.append(f"edge lists for {nf} numeric features expected")
        if len(self.categories) != len(self.categorical):
            problems.append(f"{len(self.categories)} counts for {len(self.categorical)} features")
        features = nf + len(self.categorical) + 1
        if any(not (0 <= a < b < features) for a, b in self.pairs):
            problems.append(f"pairs must be feature indices a < b < {features}")
        total = sum(self.sizes) if not problems else -1
        if len(self.table_abs) != total or len(self.table_sq) != total:
            problems.append(
                f"tables of {len(self.table_abs)}/{len(self.table_sq)} (expected {total})"
            )
        if not (self.unit_abs > 0 and self.unit_sq > 0):
            problems.append(f"units must be > 0 (got {self.unit_abs}, {self.unit_sq})")
        values = [self.intercept_abs, self.intercept_sq, *self.table_abs, *self.table_sq]
        if not all(math.isfinite(v) for v in values):
            problems.append("intercepts and tables must be finite numbers")
        if problems:
            raise ProfileError(f"{where}: " + "; ".join(problems))
        return self


@dataclasses.dataclass(frozen=True, eq=False)
class DleState(State):
    """``sums``: events, sum of predicted absolute errors (units of ``unit_abs``), sum of
    predicted squared errors (units of ``unit_sq``); int64."""

    sums: npt.NDArray[np.int64]


@dataclasses.dataclass(frozen=True, slots=True)
class DleBatch:
    """A micro-batch laid out as the model's :class:`~drifthouse.detectors.columns.Columns`:
    ``numeric`` ``(n, F_num)`` with its ``status``, category ``codes`` ``(n, F_cat)`` and the
    prediction ``score`` ``(n,)`` (NaN: no prediction, the event is not counted)."""

    numeric: npt.NDArray[np.float64]
    status: npt.NDArray[np.uint8]
    codes: npt.NDArray[np.int32]
    score: npt.NDArray[np.float64]


def _bins(
    edges: npt.NDArray[np.float64], v: npt.NDArray[np.float64], ok: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    found = np.searchsorted(edges, np.where(ok, v, 0.0), side="right") + 1
    return np.where(ok, found, 0).astype(np.int64)


def slots_of(
    model: LossModel,
    numeric: npt.NDArray[np.float64],
    present: npt.NDArray[np.bool_],
    codes: npt.NDArray[np.int32],
    score: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Each event's slot in each term's table, ``(n, terms)``, and whether it has a
    prediction. ``numeric``/``present`` and ``codes`` hold the model's own features in its
    order; a value that is not present and finite takes the missing slot."""
    fine, coarse = [], []
    for j, (edges, grid) in enumerate(zip(model.numeric_edges, model.numeric_coarse, strict=True)):
        v = numeric[:, j]
        ok = present[:, j] & np.isfinite(v)
        fine.append(_bins(np.asarray(edges, dtype=np.float64), v, ok))
        coarse.append(_bins(np.asarray(grid, dtype=np.float64), v, ok))
    for j, k in enumerate(model.categories):
        c = codes[:, j].astype(np.int64) + 1
        if c.size and (c.min() < 0 or c.max() > k + 2):
            raise SketchError(
                f"codes of {model.categorical[j]!r} must lie in -1 .. {k + 1} "
                f"(got {int(c.min()) - 1} .. {int(c.max()) - 1})"
            )
        fine.append(c)
        coarse.append(c)
    ok = np.isfinite(score)
    fine.append(_bins(np.asarray(model.prediction_edges, dtype=np.float64), score, ok))
    coarse.append(_bins(np.asarray(model.prediction_coarse, dtype=np.float64), score, ok))
    sizes = model.coarse_sizes
    cols = fine + [coarse[a] * sizes[b] + coarse[b] for a, b in model.pairs]
    return np.column_stack(cols), ok


class DleSketch(Sketch[DleState, DleBatch]):
    """Estimated MAE and RMSE of one regression model from its profile's :class:`LossModel`.

    ``numeric_index`` and ``categorical_index`` are the columns of the model's features in the
    batches' layout.

    Examples
    --------
    >>> import numpy as np
    >>> m = LossModel(numeric=[], numeric_edges=[], numeric_coarse=[], categorical=[],
    ...     categories=[], prediction_edges=[0.0], prediction_coarse=[], pairs=[], intercept_abs=1.0, intercept_sq=2.0, table_abs=[0, 0, 1],
    ...     table_sq=[0, 0, 2], unit_abs=2**-20, unit_sq=2**-20, events=100, mae_std=1.0,
    ...     se_std=2.0, se_mean=4.0)
    >>> sk = DleSketch(m, [], [])
    >>> e = np.zeros((2, 0))
    >>> st = sk.update(sk.empty(), DleBatch(e, e.astype(np.uint8), e.astype(np.int32),
    ...     np.array([-1.0, 1.0])))
    >>> sk.estimates(st)
    (2, 1.5, 2.0)
    """

    def __init__(
        self, model: LossModel, numeric_index: Sequence[int], categorical_index: Sequence[int]
    ) -> None:
        model.validate()
        if len(numeric_index) != len(model.numeric) or len(categorical_index) != len(
            model.categorical
        ):
            raise SketchError("one column index per feature of the loss model")
        self.model = model
        self.numeric_index = np.asarray(numeric_index, dtype=np.intp)
        self.categorical_index = np.asarray(categorical_index, dtype=np.intp)
        self.offsets = np.concatenate([[0], np.cumsum(model.sizes)[:-1]]).astype(np.int64)
        self.table_abs = np.asarray(model.table_abs, dtype=np.float64)
        self.table_sq = np.asarray(model.table_sq, dtype=np.float64)
        self.layout = hashlib.blake2b(msgspec.json.encode(model), digest_size=8).hexdigest()

    def empty(self) -> DleState:
        return DleState(layout=self.layout, sums=np.zeros(3, dtype=np.int64))

    def slots(self, batch: DleBatch) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """The batch's slots and which events have a prediction (:func:`slots_of`)."""
        num = batch.numeric[:, self.numeric_index]
        present = batch.status[:, self.numeric_index] == PRESENT
        codes = batch.codes[:, self.categorical_index]
        return slots_of(self.model, num, present, codes, np.asarray(batch.score, dtype=np.float64))

    def update(self, state: DleState, batch: DleBatch) -> DleState:
        """Add a batch, in place (integer sums: the order of events never matters)."""
        if batch.score.shape[0] == 0:
            return state
        slots, ok = self.slots(batch)
        m = self.model
        dle_update(
            np.ascontiguousarray(slots),
            ok,
            self.offsets,
            self.table_abs,
            self.table_sq,
            m.intercept_abs,
            m.intercept_sq,
            1.0 / m.unit_abs,
            1.0 / m.unit_sq,
            CAP,
            state.sums,
        )
        return state

    def merge(self, a: DleState, b: DleState) -> DleState:
        if a.layout != b.layout:
            raise SketchError("cannot merge DLE states of different loss models")
        return DleState(layout=a.layout, sums=a.sums + b.sums)

    def estimates(self, state: DleState) -> tuple[int, float, float]:
        """Events, estimated MAE and estimated RMSE of a window (NaN without events)."""
        n = int(state.sums[0])
        if n == 0:
            return 0, math.nan, math.nan
        mae = float(state.sums[1]) * self.model.unit_abs / n
        mse = float(state.sums[2]) * self.model.unit_sq / n
        return n, mae, math.sqrt(mse)

    def evaluate(self, state: DleState, context: Context = NO_CONTEXT) -> list[Result]:
        """``estimated_mae`` and ``estimated_rmse`` with ``_lower`` and ``_upper`` (plus or
        minus three sampling errors, the lower floored at 0); nothing without events."""
        n, mae, rmse = self.estimates(state)
        if n == 0:
            return []
        m, ref = self.model, self.model.events
        errors = {
            "mae": m.mae_std / math.sqrt(n),
            "rmse": math.sqrt(m.se_std**2 / (4 * n * m.se_mean)) if m.se_mean > 0 else math.nan,
        }
        out: list[Result] = []
        for metric, value in (("mae", mae), ("rmse", rmse)):
            out.append(Result("", f"estimated_{metric}", value, None, ref, n))
            err = errors[metric]
            if not math.isnan(err):
                lo, hi = max(0.0, value - BAND * err), value + BAND * err
                out.append(Result("", f"estimated_{metric}_lower", lo, None, ref, n))
                out.append(Result("", f"estimated_{metric}_upper", hi, None, ref, n))
        return out


class Profiled(Protocol):
    """What has a loss model (a :class:`~drifthouse.detectors.reference.Profile`)."""

    @property
    def loss_model(self) -> LossModel | None: ...


def sketch_for(
    profile: Profiled | None, numeric: Sequence[str], categorical: Sequence[str]
) -> DleSketch | None:
    """The estimation of a profile's loss model over a layout's feature names; ``None``
    without one, or when a feature it was fitted on is not sketched (a PII feature)."""
    model = profile.loss_model if profile is not None else None
    if model is None:
        return None
    num = {name: j for j, name in enumerate(numeric)}
    cat = {name: j for j, name in enumerate(categorical)}
    if any(f not in num for f in model.numeric) or any(f not in cat for f in model.categorical):
        return None
    return DleSketch(model, [num[f] for f in model.numeric], [cat[f] for f in model.categorical])


class _Columns(Protocol):
    @property
    def numeric(self) -> npt.NDArray[np.float64]: ...
    @property
    def status(self) -> npt.NDArray[np.uint8]: ...
    @property
    def codes(self) -> npt.NDArray[np.int32]: ...
    @property
    def score(self) -> npt.NDArray[np.float64]: ...


def batch_of_columns(cols: _Columns) -> DleBatch:
    """A micro-batch's columns as a :class:`DleBatch`."""
    return DleBatch(cols.numeric, cols.status, cols.codes, cols.score)
