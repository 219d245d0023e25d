"""One conformance test for every sketch (river's ``stats/test_parallel.py`` style).

The sketches are discovered, not listed: every subclass of
:class:`drifthouse.detectors.base.Sketch`, and every class anywhere in the package that looks
like one (``empty``, ``update``, ``merge`` and ``evaluate``), must have a case in ``CASES``;
a new sketch without one fails :func:`test_every_sketch_has_a_case`. For each case, with
Hypothesis drawing the batches:

- ``empty()`` is the identity of ``merge`` (both sides, state equality, bit for bit);
- ``merge`` is associative;
- updating pane by pane and merging the panes equals one pass over all batches.

Sketches whose states hold float moments (Welford's mean and M2, merged by Chan et al.'s
formula) are associative up to rounding: for them the float arrays are compared to 1e-12
relative and every count exactly; evaluate's results likewise. Every other comparison is exact.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import pkgutil
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import drifthouse
from drifthouse.config import MetricsConfig
from drifthouse.detectors.base import NO_CONTEXT, Context, Result, Sketch, State
from drifthouse.detectors.calibration import Calibration, IsotonicMap
from drifthouse.detectors.categorical import CategoricalBlock
from drifthouse.detectors.cbpe import CbpeBatch, CbpeSketch
from drifthouse.detectors.columns import extract
from drifthouse.detectors.dle import DleBatch, DleSketch
from drifthouse.detectors.embedding import EmbeddingBatch, EmbeddingSketch
from drifthouse.detectors.importance import ImportanceBatch, ImportanceSketch
from drifthouse.detectors.label_kinds import BinarySketch, ClassSketch, Pairs, RegressionSketch
from drifthouse.detectors.label_sketch import LabelBatch, LabelSketch
from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch
from drifthouse.detectors.multivariate import MultivariateBatch, MultivariateSketch, sketch_for
from drifthouse.detectors.numeric import NumericBatch, NumericBlock
from drifthouse.detectors.pca import ReconstructionSketch
from drifthouse.detectors.quantiles import QuantileSketch
from drifthouse.detectors.segments import Rows, SegmentSketch
from drifthouse.detectors.status import StatusCounter
from drifthouse.events import PredictionEvent
from drifthouse.stream.metric_events import MetricEventSketch
from tests.detectors.strategies import float_values, make_profile, reference_profile

PROFILE = reference_profile()
SCORED = make_profile(
    {"x": np.random.default_rng(3).normal(size=2_000), "c": ["a", "b", "c"] * 666 + ["a", "b"]},
    prediction=np.random.default_rng(4).uniform(size=2_000),
)


@dataclasses.dataclass(frozen=True)
class Case:
    """How to build one sketch, draw one batch for it, and compare its states."""

    build: Callable[[], Sketch[Any, Any]]
    batch: st.SearchStrategy[Any]
    context: Context = NO_CONTEXT
    #: Float moments merged by Chan et al.'s formula: equal up to rounding only.
    rounding: bool = False


#: Values for float moments: NaN and infinities (counted, not summed), ties, no 1e300 whose
#: squares overflow (merge order then decides between inf and nan; test_blocks covers them).
moderate_values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, 1.0, np.nan, np.inf, -np.inf])
)


def _numeric_batch(n_features: int) -> st.SearchStrategy[NumericBatch]:
    return st.integers(0, 40).flatmap(
        lambda n: st.builds(
            NumericBatch,
            hnp.arrays(np.float64, (n, n_features), elements=moderate_values),
            hnp.arrays(np.uint8, (n, n_features), elements=st.sampled_from([0, 0, 0, 1, 2])),
        )
    )


def _codes(block: CategoricalBlock) -> st.SearchStrategy[np.ndarray]:
    top = (block.n_categories + 1).astype(np.int32)
    return st.integers(0, 40).flatmap(
        lambda n: hnp.arrays(np.int32, (n, block.n_features), elements=st.integers(-1, 5)).map(
            lambda c: np.minimum(c, top)
        )
    )


_latency = hnp.arrays(
    np.float64,
    st.integers(0, 40),
    elements=st.one_of(st.floats(0, 1e5, allow_nan=False), st.sampled_from([0.0, -1.0, np.nan])),
)
_statuses = hnp.arrays(
    np.int64, st.integers(0, 40), elements=st.sampled_from([200, 302, 404, 503, 0])
)


def _importance_batch(sk: ImportanceSketch) -> st.SearchStrategy[ImportanceBatch]:
    f_num, f_cat = len(sk.numeric), len(sk.categorical)
    return st.integers(0, 40).flatmap(
        lambda n: st.builds(
            ImportanceBatch,
            hnp.arrays(np.float64, (n, f_num), elements=float_values),
            hnp.arrays(np.uint8, (n, f_num), elements=st.sampled_from([0, 0, 1])),
            hnp.arrays(np.int32, (n, f_cat), elements=st.integers(-1, 4)),
            hnp.arrays(np.float64, n, elements=float_values),
        )
    )


def _pairs(y: st.SearchStrategy[Any], p: st.SearchStrategy[Any]) -> st.SearchStrategy[Pairs]:
    return st.lists(st.tuples(y, p), max_size=40).map(
        lambda rows: Pairs([r[0] for r in rows], [r[1] for r in rows])
    )


_binary = _pairs(st.sampled_from([0, 1]), st.floats(0, 1)).map(
    lambda b: Pairs(np.asarray(b.y_true, np.int64), np.asarray(b.y_pred, np.float64))
)
_classes = _pairs(
    st.sampled_from(["cat", "dog", "eel", "fox"]), st.sampled_from(["cat", "dog", "x"])
)
_regression = _pairs(
    st.floats(-100, 100).map(lambda v: 0.0 if abs(v) < 1 else v),
    st.one_of(st.floats(-100, 100), st.just(math.nan)),
).map(lambda b: Pairs(np.asarray(b.y_true, np.float64), np.asarray(b.y_pred, np.float64)))
_labels = st.lists(
    st.tuples(
        st.one_of(st.sampled_from([0, 1, "yes", "cat", True]), st.floats(-5, 5)),
        st.one_of(st.floats(0, 1), st.floats(-5, 5), st.just(math.nan)),
        st.sampled_from([None, None, "cat", "dog"]),
    ),
    max_size=30,
).map(
    lambda rows: LabelBatch(
        [r[0] for r in rows], np.asarray([r[1] for r in rows], np.float64), [r[2] for r in rows]
    )
)

_event = st.builds(
    lambda ts, x, c, score, lat, status, seg: PredictionEvent(
        model="m",
        ts_ms=ts,
        features={"x": x, "c": c},
        prediction=score,
        latency_ms=lat,
        status=status,
        segment={"country": seg} if seg else {},
    ),
    st.integers(0, 10_000),
    st.one_of(st.floats(-3, 3), st.none(), st.just("?")),
    st.one_of(st.sampled_from(["a", "b", "c", "zz"]), st.none()),
    st.one_of(st.floats(0, 1), st.none()),
    st.one_of(st.floats(1, 500), st.none()),
    st.sampled_from([200, 200, 404, 503]),
    st.sampled_from([None, "DE", "FR"]),
)


def _model_batch(sk: ModelSketch) -> st.SearchStrategy[ModelBatch]:
    return st.lists(_event, max_size=20).map(lambda events: ModelBatch(extract(events, sk.layout)))


_MODEL = ModelSketch("m", SCORED, MetricsConfig())


def _rows(sk: ModelSketch) -> st.SearchStrategy[Rows]:
    """Some rows of a batch of events, ascending (a segment value's rows)."""
    return st.lists(_event, max_size=20).flatmap(
        lambda events: st.sets(st.integers(0, max(len(events) - 1, 0)), max_size=len(events)).map(
            lambda rows: Rows(extract(events, sk.layout), np.asarray(sorted(rows), dtype=np.intp))
        )
    )


def _multivariate() -> MultivariateSketch:
    assert PROFILE.multivariate is not None
    sk = sketch_for(PROFILE, ("x", "y", "z"), ("c", "flag"))
    assert sk is not None
    return sk


def _multivariate_batch(sk: MultivariateSketch) -> st.SearchStrategy[MultivariateBatch]:
    top = sk.tables.shape[1] - 2
    return st.integers(0, 40).flatmap(
        lambda n: st.builds(
            MultivariateBatch,
            hnp.arrays(np.float64, (n, 3), elements=float_values),
            hnp.arrays(np.uint8, (n, 3), elements=st.sampled_from([0, 0, 0, 1, 2])),
            hnp.arrays(np.int32, (n, 2), elements=st.integers(-1, top)),
        )
    )


_RNG = np.random.default_rng(8)
REGRESSION = make_profile(
    {"x": _RNG.normal(size=1_000), "c": list(_RNG.choice(["a", "b"], size=1_000))},
    prediction=np.arange(1_000.0),
    label=np.arange(1_000.0) + _RNG.normal(size=1_000) * 30,
    task="regression",
)


def _dle() -> DleSketch:
    assert REGRESSION.loss_model is not None
    return DleSketch(REGRESSION.loss_model, [0], [0])


def _dle_batch() -> st.SearchStrategy[DleBatch]:
    return st.integers(0, 40).flatmap(
        lambda n: st.builds(
            DleBatch,
            hnp.arrays(np.float64, (n, 1), elements=float_values),
            hnp.arrays(np.uint8, (n, 1), elements=st.sampled_from([0, 0, 0, 1, 2])),
            hnp.arrays(np.int32, (n, 1), elements=st.integers(-1, 3)),
            hnp.arrays(np.float64, n, elements=float_values),
        )
    )


_metric_values = st.dictionaries(
    st.sampled_from(["cpu", "gpu", "mem"]), st.floats(0, 100), max_size=3
)

EMBEDDED = make_profile(
    {
        "x": np.random.default_rng(5).normal(size=500),
        "emb": np.random.default_rng(6).normal(size=(500, 4)),
        "pair": np.random.default_rng(7).normal(size=(500, 2)),
    }
)


def _embedding_batch(dims: Sequence[int]) -> st.SearchStrategy[EmbeddingBatch]:
    """Vectors with NaN, infinities, zero rows and huge values, and every status code."""
    return st.integers(0, 30).flatmap(
        lambda n: st.builds(
            EmbeddingBatch,
            st.tuples(*(hnp.arrays(np.float64, (n, d), elements=float_values) for d in dims)),
            hnp.arrays(np.uint8, (n, len(dims)), elements=st.sampled_from([0, 0, 0, 1, 2, 3])),
        )
    )


CASES: dict[type[Any], Case] = {
    NumericBlock: Case(
        lambda: NumericBlock.from_profile(PROFILE), _numeric_batch(3), rounding=True
    ),
    CategoricalBlock: Case(
        lambda: CategoricalBlock.from_profile(PROFILE),
        _codes(CategoricalBlock.from_profile(PROFILE)),
    ),
    QuantileSketch: Case(QuantileSketch, _latency),
    StatusCounter: Case(StatusCounter, _statuses),
    ImportanceSketch: Case(
        lambda: ImportanceSketch.from_profile(SCORED),
        _importance_batch(ImportanceSketch.from_profile(SCORED)),
    ),
    BinarySketch: Case(lambda: BinarySketch(bins=20), _binary),
    ClassSketch: Case(lambda: ClassSketch(["cat", "dog", "eel"]), _classes),
    RegressionSketch: Case(RegressionSketch, _regression, rounding=True),
    LabelSketch: Case(
        lambda: LabelSketch(classes=["cat", "dog"], bins=20),
        _labels,
        Context(predictions=50),
        rounding=True,
    ),
    ModelSketch: Case(
        lambda: _MODEL, _model_batch(_MODEL), Context(window_ms=60_000), rounding=True
    ),
    SegmentSketch: Case(
        lambda: _MODEL.segment, _rows(_MODEL), Context(window_ms=60_000), rounding=True
    ),
    MetricEventSketch: Case(
        MetricEventSketch, st.lists(_metric_values, max_size=10), rounding=True
    ),
    EmbeddingSketch: Case(lambda: EmbeddingSketch(EMBEDDED.embeddings), _embedding_batch([4, 2])),
    MultivariateSketch: Case(_multivariate, _multivariate_batch(_multivariate())),
    ReconstructionSketch: Case(
        lambda: _multivariate().inner,
        hnp.arrays(
            np.float64,
            st.tuples(st.integers(0, 40), st.just(5)),
            elements=st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, 1e300, -1e300])),
        ),
    ),
    DleSketch: Case(_dle, _dle_batch()),
    CbpeSketch: Case(
        lambda: CbpeSketch(Calibration(maps=[IsotonicMap(x=[0.1, 0.9], y=[0.2, 0.8])]), bins=20),
        hnp.arrays(
            np.float64,
            st.integers(0, 40),
            elements=st.one_of(st.floats(0, 1), st.sampled_from([0.5, np.nan])),
        ).map(CbpeBatch),
    ),
}


def _subclasses(cls: type[Any]) -> set[type[Any]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return {c for c in found if not inspect.isabstract(c)}


def _lookalikes() -> set[type[Any]]:
    """Every class of the package with the protocol's four methods, whatever its base."""
    found: set[type[Any]] = set()
    for info in pkgutil.walk_packages(drifthouse.__path__, "drifthouse."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                obj.__module__ == info.name
                and not inspect.isabstract(obj)
                and all(
                    callable(getattr(obj, m, None))
                    for m in ("empty", "update", "merge", "evaluate")
                )
            ):
                found.add(obj)
    return found


def test_every_sketch_has_a_case() -> None:
    sketches = _subclasses(Sketch) | _lookalikes()
    assert sketches - set(CASES) == set(), "sketches without a conformance case"
    not_sketch = {c for c in _lookalikes() if not issubclass(c, Sketch)}
    assert not_sketch == set(), "classes shaped like a sketch that do not follow Sketch"


def test_one_signature_shape() -> None:
    """``update(state, batch)``, ``merge(a, b)``, ``evaluate(state, context)`` everywhere."""
    for cls in CASES:
        for name, params in (
            ("empty", []),
            ("update", ["state", "batch"]),
            ("merge", ["a", "b"]),
            ("evaluate", ["state", "context"]),
        ):
            sig = inspect.signature(getattr(cls, name))
            assert list(sig.parameters)[1:] == params, f"{cls.__name__}.{name}{sig}"


def _same(a: Any, b: Any, *, rounding: bool) -> bool:
    """States equal: bitwise, or (rounding) floats to 1e-12 and everything else exact."""
    if not rounding:
        return bool(a.equals(b))
    return _close(_flat(a), _flat(b))


def _flat(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, State | msgspec.Struct) or dataclasses.is_dataclass(x):
        names = (
            [f.name for f in dataclasses.fields(x)]
            if dataclasses.is_dataclass(x)
            else list(x.__struct_fields__)
        )
        return {n: _flat(getattr(x, n)) for n in names}
    if isinstance(x, dict):
        return {k: _flat(v) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return [_flat(v) for v in x]
    return x


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.dtype.kind == "f":
            return a.shape == b.shape and bool(
                np.allclose(a, b, rtol=1e-12, atol=1e-9, equal_nan=True)
            )
        return a.dtype == b.dtype and bool(np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9) or (a != a and b != b)
    return bool(a == b)


def _results_close(a: Sequence[Result], b: Sequence[Result], *, rounding: bool) -> bool:
    if not rounding:
        return list(a) == list(b)
    return len(a) == len(b) and all(
        (x.feature, x.metric, x.n_ref, x.n_cur) == (y.feature, y.metric, y.n_ref, y.n_cur)
        and math.isclose(x.value, y.value, rel_tol=1e-9, abs_tol=1e-9)
        for x, y in zip(a, b, strict=True)
    )


CASE_IDS = [c.__name__ for c in CASES]


@pytest.mark.parametrize("cls", list(CASES), ids=CASE_IDS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_empty_is_the_identity_of_merge(cls: type[Any], data: st.DataObject) -> None:
    case = CASES[cls]
    sk = case.build()
    s = sk.update(sk.empty(), data.draw(case.batch))
    assert sk.merge(sk.empty(), s).equals(s)
    assert sk.merge(s, sk.empty()).equals(s)
    assert sk.merge(sk.empty(), sk.empty()).equals(sk.empty())


@pytest.mark.parametrize("cls", list(CASES), ids=CASE_IDS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_merge_is_associative(cls: type[Any], data: st.DataObject) -> None:
    case = CASES[cls]
    sk = case.build()
    a, b, c = (sk.update(sk.empty(), data.draw(case.batch)) for _ in range(3))
    left = sk.merge(sk.merge(a, b), c)
    right = sk.merge(a, sk.merge(b, c))
    assert _same(left, right, rounding=case.rounding)
    assert _results_close(
        sk.evaluate(left, case.context), sk.evaluate(right, case.context), rounding=case.rounding
    )


@pytest.mark.parametrize("cls", list(CASES), ids=CASE_IDS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_split_and_merge_equals_one_pass(cls: type[Any], data: st.DataObject) -> None:
    case = CASES[cls]
    sk = case.build()
    batches = data.draw(st.lists(case.batch, min_size=1, max_size=4))
    one = sk.empty()
    for batch in batches:
        one = sk.update(one, batch)
    panes = [sk.update(sk.empty(), batch) for batch in batches]
    merged = panes[0]
    for pane in panes[1:]:
        merged = sk.merge(merged, pane)
    assert _same(merged, one, rounding=case.rounding)
    assert _results_close(
        sk.evaluate(merged, case.context), sk.evaluate(one, case.context), rounding=case.rounding
    )
