"""The worker's fast decode: prediction events whose features fit their model's reference.

:class:`~drifthouse.events.PredictionEvent` decodes ``features`` into a dict, which costs a
key string, a value and a hash-table slot per feature, and its numeric columns then need a
type check value by value (a string or a bool in a numeric feature is a ``type_error``, not a
number). For a model with a reference profile, :class:`TypedDecoders` builds a second decoder
whose ``features`` is a struct with exactly the profile's features, each required: numeric
ones ``float | None``, categorical ones any feature value (``str | float | bool | None``: a
category may come as ``"1"``, ``1`` or ``true``), embeddings an array of numbers or ``null``
(any length: a wrong one is counted, not refused), none other allowed, and whose ``model`` is
that model's name. An event that fits decodes about 40% faster, and its numeric columns come
out without a type check (:func:`drifthouse.detectors.columns.extract`).

An event that does not fit (another model, a missing or extra feature, another type, a
``NaN`` literal, anything invalid) is decoded by the general decoder as before, so the fast
path only ever accepts what the general one would decode to the same values: the metrics do
not depend on which path an event took. Models whose features hold PII (hashed for the
prediction log), and models with a feature name msgspec cannot match (one holding a quote, a
backslash or a control character), always take the general path.

Examples
--------
>>> from drifthouse.detectors.layout import FeatureLayout
>>> layout = FeatureLayout(("amount",), ("country",), ({"DE": 0},), (1,))
>>> decoders = TypedDecoders(lambda model: layout if model == "fraud" else None)
>>> decode = decoders.decoder("fraud")
>>> event = decode(b'{"model": "fraud", "ts": 5, "features": {"amount": 3, "country": "DE"}}')
>>> event.features.as_dict()
{'amount': 3.0, 'country': 'DE'}
>>> decoders.decoder("other") is None
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import msgspec

from drifthouse.detectors.layout import FeatureLayout
from drifthouse.events import Buffer, FeatureValue, PredictionEvent
from drifthouse.events.batch_rows import Row

__all__ = ["TypedDecoders", "TypedFeatures"]


class TypedFeatures(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Base of the per-model feature structs: field ``f<j>`` holds feature ``names[j]``;
    the first ``numeric`` are the numeric features."""

    names: ClassVar[tuple[str, ...]] = ()
    numeric: ClassVar[int] = 0
    #: The last ``embedding`` fields are the embedding features.
    embedding: ClassVar[int] = 0

    def as_dict(self) -> dict[str, FeatureValue]:
        """The features as the general decoder gives them."""
        return dict(zip(self.names, msgspec.structs.astuple(self), strict=True))


def _nameable(layout: FeatureLayout) -> bool:
    # msgspec cannot match a field whose JSON name holds a quote, a backslash or a control
    # character; a model with such a feature takes the general path.
    return not any(
        '"' in name or "\\" in name or any(ord(c) < 0x20 for c in name)
        for name in (*layout.numeric, *layout.categorical, *layout.embedding)
    )


def _features_type(model: str, layout: FeatureLayout) -> type[TypedFeatures]:
    names = (*layout.numeric, *layout.categorical, *layout.embedding)
    n_num, n_emb = len(layout.numeric), len(layout.embedding)
    first_emb = len(names) - n_emb

    def kind(j: int) -> Any:
        if j < n_num:
            return float | None
        return list[float | None] | None if j >= first_emb else FeatureValue

    fields: list[tuple[str, Any, Any]] = [
        (f"f{j}", kind(j), msgspec.field(name=name)) for j, name in enumerate(names)
    ]
    features: type[TypedFeatures] = msgspec.defstruct(  # type: ignore[assignment]
        f"Features[{model}]",
        fields,
        bases=(TypedFeatures,),
        namespace={"names": names, "numeric": n_num, "embedding": n_emb},
        forbid_unknown_fields=True,
        gc=False,
    )
    return features


def _event_type(model: str, features: type[TypedFeatures]) -> type[PredictionEvent]:
    # ``events`` and ``columns`` (null or absent) make a batch envelope fail here: an event
    # this decoder takes is a single event, and a chunk of them needs no search for envelopes
    # (drifthouse.events.batches.decode_messages).
    event: type[PredictionEvent] = msgspec.defstruct(  # type: ignore[assignment]
        f"PredictionEvent[{model}]",
        [
            ("model", Literal.__getitem__(model)),
            ("features", features),
            ("not_events", None, msgspec.field(default=None, name="events")),
            ("not_columns", None, msgspec.field(default=None, name="columns")),
        ],
        bases=(PredictionEvent,),
        kw_only=True,
        omit_defaults=True,
        gc=False,
    )
    return event


def _rows_type(model: str, features: type[TypedFeatures]) -> type[msgspec.Struct]:
    """A batch of ``model`` in rows (docs/events.md, "Batched messages"): its events may
    leave out ``model`` and ``model_version``, which the envelope gives."""
    unset = msgspec.UnsetType
    row = msgspec.defstruct(
        f"PredictionRow[{model}]",
        [
            ("model", str | unset, msgspec.UNSET),
            ("model_version", str | unset, msgspec.UNSET),
            ("features", features),
        ],
        bases=(PredictionEvent,),
        kw_only=True,
        omit_defaults=True,
        gc=False,
    )
    return _batch_of(f"Rows[{model}]", model, row)


def _plain_rows_type(model: str, features: type[TypedFeatures]) -> type[msgspec.Struct]:
    """:func:`_rows_type` whose rows are plain (:class:`~drifthouse.events.batch_rows.Row`,
    no event built: :func:`drifthouse.events.batch_rows.decode_rows` takes them into columns)."""
    row = msgspec.defstruct(f"PlainRow[{model}]", [("features", features)], bases=(Row,), gc=False)
    return _batch_of(f"PlainRows[{model}]", model, row)


def _batch_of(name: str, model: str, row: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """The envelope of a batch in rows of ``model``: its name, its events as ``row``s, and the
    version they share unless they name their own."""
    rows: type[msgspec.Struct] = msgspec.defstruct(
        name,
        [
            ("model", Literal.__getitem__(model)),
            ("events", list[row]),  # type: ignore[valid-type]
            ("model_version", str, "unknown"),
        ],
    )
    return rows


class TypedDecoders:
    """Fast decoders per model, built on first use.

    Parameters
    ----------
    layouts
        A model's feature layout, or ``None`` for a model that takes the general path (no
        reference profile, PII features).
    """

    def __init__(self, layouts: Callable[[str], FeatureLayout | None]) -> None:
        self._layouts = layouts
        self._built: dict[str, Callable[[Buffer], PredictionEvent] | None] = {}
        self._rows: dict[str, Callable[[Buffer], Any] | None] = {}
        self._plain: dict[str, Callable[[Buffer], Any] | None] = {}

    def decoder(self, model: str) -> Callable[[Buffer], PredictionEvent] | None:
        """``decode(raw)`` for events of ``model`` that fit its layout (raising
        ``msgspec.DecodeError`` for any other message), or ``None``."""
        try:
            return self._built[model]
        except KeyError:
            pass
        features = self._features(model)
        found = None if features is None else msgspec.json.Decoder(_event_type(model, features))
        self._built[model] = None if found is None else found.decode
        return self._built[model]

    def rows(self, model: str) -> Callable[[Buffer], Any] | None:
        """``decode(raw)`` for batches of ``model`` in rows whose events all fit its layout
        (raising ``msgspec.DecodeError`` for any other message), or ``None``."""
        try:
            return self._rows[model]
        except KeyError:
            pass
        features = self._features(model)
        found = None if features is None else msgspec.json.Decoder(_rows_type(model, features))
        self._rows[model] = None if found is None else found.decode
        return self._rows[model]

    def plain_rows(self, model: str) -> Callable[[Buffer], Any] | None:
        """:meth:`rows` into plain rows whose features are a struct, for
        :func:`drifthouse.events.batch_rows.decode_rows`, or ``None``."""
        try:
            return self._plain[model]
        except KeyError:
            pass
        features = self._features(model)
        found = (
            None if features is None else msgspec.json.Decoder(_plain_rows_type(model, features))
        )
        self._plain[model] = None if found is None else found.decode
        return self._plain[model]

    def _features(self, model: str) -> type[TypedFeatures] | None:
        layout = self._layouts(model)
        if (
            layout is not None
            and (layout.numeric or layout.categorical or layout.embedding)
            and _nameable(layout)
        ):
            return _features_type(model, layout)
        return None
