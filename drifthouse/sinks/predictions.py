"""The sampled prediction log (table ``predictions``).

Per model (``models.<name>`` in the config):

- every error (``status >= 400``) is kept, and so is every prediction matching ``keep_when``, a
  rule condition over the prediction (``value`` is its score: the number, the probability of class
  ``1``/``true``, or the highest class probability), e.g. ``keep_when: "value > 0.9"``;
- routine predictions are kept with probability ``sample_rate`` by a deterministic sampler: a
  hash of the model and event id against the rate (for an event without an id, of its model,
  version, time, prediction, latency, status and segment: not its features), so a replay, a
  restart and every worker keep the same events;
- a feature that is an array (an embedding) is stored as ``{"len": n, "head": [...]}``, its
  length and first ``log_array_head`` elements (default 8), or with ``log_arrays: hash`` as
  ``sha256:<hex>`` of the whole array (equal arrays, equal hashes), so a 384-number embedding
  does not multiply the table's size;
- features, segment attributes and ``event_id`` named in ``pii`` (the model's and the global
  list) are replaced by ``hmac-sha256:<hex>``, a keyed hash (HMAC-SHA256) with the secret in
  environment variable ``DRIFTHOUSE_PII_KEY`` (at least 32 bytes): equal values still join and
  group, but cannot be read back or guessed from a dictionary without the key
  (:mod:`drifthouse.pii`).

Example
-------
>>> from drifthouse.config import ModelConfig
>>> log = PredictionLog({"fraud": ModelConfig(pii=["email"], sample_rate=0.0)}, key=b"k" * 32)
>>> row = log.row(model="fraud", model_version="1", ts_ms=0, event_id="e1",
...               features={"email": "a@b.c", "amount": 3.0}, prediction=0.2,
...               latency_ms=4.0, status=500)
>>> row.kept_because, '"email":"hmac-sha256:' in row.features
('error', True)
>>> log.row(model="fraud", model_version="1", ts_ms=0, event_id="e2", features={},
...         prediction=0.2, latency_ms=4.0, status=200) is None
True
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from drifthouse.categories import category_key
from drifthouse.config import Config, ModelConfig
from drifthouse.errors import ConfigError
from drifthouse.expr import Condition, parse  # the rule language, reused for keep_when
from drifthouse.pii import PII_KEY_ENV, hash_pii, pii_key_from_env
from drifthouse.rows import PredictionRow

if TYPE_CHECKING:
    from drifthouse.detectors.reference import Profile
    from drifthouse.events.batch_columns import ColumnBatch

__all__ = [
    "PII_KEY_ENV",
    "PredictionLog",
    "hash_pii",
    "pii_key_from_env",
    "sample_point",
    "score_of",
]

_json = msgspec.json.Encoder(order="sorted")


def sample_point(key: str) -> float:
    """A uniform point in [0, 1) fixed by ``key``: keep an event when it is below the rate.

    CRC-32 of the key's UTF-8 bytes, over 2**32: it spreads ids (random or sequential) evenly,
    needs no secret (sampling is not a security boundary) and costs a tenth of a cryptographic
    hash, which matters at one call per event. The log's key is ``model + "\x00" + id``
    (:func:`_content_key` stands in for the id of an event without one).
    """
    return zlib.crc32(key.encode("utf-8")) / 4_294_967_296.0


def _content_key(
    model_version: str,
    ts_ms: int,
    prediction: object,
    latency_ms: float | None,
    status: int,
    segment: Mapping[str, str] | None,
) -> str:
    """What stands in for the id of an event without one when sampling: everything it holds
    but its features (encoding 25 features to decide about one event in a hundred cost a
    quarter of a replay). Events equal in all of these are kept or left out together."""
    return _json.encode(
        [model_version, ts_ms, prediction, latency_ms, status, segment or {}]
    ).decode()


def score_of(prediction: object) -> float | None:
    """The number ``keep_when`` sees as ``value``: the prediction, or its positive-class probability."""
    if isinstance(prediction, bool):
        return float(prediction)
    if isinstance(prediction, int | float):
        return float(prediction) if math.isfinite(prediction) else None
    if isinstance(prediction, Mapping) and prediction:
        for positive in ("1", "true", "True", "yes", "positive"):
            if positive in prediction:
                return float(prediction[positive])
        return float(max(prediction.values()))
    return None


def _array(value: list[Any], cfg: ModelConfig) -> object:
    """How the log stores an array feature (``log_arrays``): truncated, or hashed whole."""
    if cfg.log_arrays == "hash":
        return "sha256:" + hashlib.sha256(_json.encode(value)).hexdigest()
    return {"len": len(value), "head": value[: cfg.log_array_head]}


def _mapping(features: Any) -> Mapping[str, Any]:
    # Features decoded by a model's fast decoder are a struct (drifthouse.detectors.typed_decode).
    return features if isinstance(features, Mapping) else features.as_dict()


class PredictionLog:
    """Turns decoded prediction events into sampled, PII-safe rows of table ``predictions``.

    Parameters
    ----------
    models:
        Per-model settings (``pii``, ``sample_rate``, ``keep_when``); models not listed use
        ``default``.
    key:
        The PII hashing key; read from ``DRIFTHOUSE_PII_KEY`` when ``None``.
    """

    def __init__(
        self,
        models: Mapping[str, ModelConfig],
        *,
        key: bytes | None = None,
        default: ModelConfig | None = None,
        categorical: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self.models = dict(models)
        # Per model, its categorical features (from its profile): logged as category keys.
        self._categorical = {m: frozenset(names) for m, names in (categorical or {}).items()}
        self.default = default or ModelConfig()
        everything = {**self.models, "*": self.default}
        self.key = key if key is not None else pii_key_from_env(everything)
        self._keep: dict[str, Condition] = {}
        for name, cfg in everything.items():
            if cfg.keep_when:
                try:
                    self._keep[name] = parse(cfg.keep_when)
                except ConfigError as exc:
                    raise ConfigError(
                        f"models.{name}.keep_when: {exc}", [(f"models.{name}.keep_when", str(exc))]
                    ) from None
        # Per model, the sampling rate when nothing but the sampler decides (no keep_when).
        self._sample_rates = {
            name: None if name in self._keep else cfg.sample_rate
            for name, cfg in self.models.items()
        }
        self._default_rate = None if "*" in self._keep else self.default.sample_rate

    @classmethod
    def for_config(
        cls,
        config: Config,
        *,
        key: bytes | None = None,
        profiles: Mapping[str, Profile] | None = None,
    ) -> PredictionLog:
        """The prediction log of ``config``: its models, and the global ``pii`` for the others;
        the categorical features of ``profiles`` are logged as category keys."""
        categorical = {
            model: [f.name for f in profile.categorical]
            for model, profile in (profiles or {}).items()
        }
        return cls(config.models, key=key, default=config.model("*"), categorical=categorical)

    def _config(self, model: str) -> tuple[ModelConfig, Condition | None]:
        if model in self.models:
            return self.models[model], self._keep.get(model)
        return self.default, self._keep.get("*")

    def row(
        self,
        *,
        model: str,
        model_version: str,
        ts_ms: int,
        event_id: str | None,
        features: Mapping[str, Any],
        prediction: Any,
        latency_ms: float | None,
        status: int,
        segment: Mapping[str, str] | None = None,
    ) -> PredictionRow | None:
        """The log row of one event, or ``None`` when the sampler leaves it out."""
        cfg, keep_when = self._config(model)
        score = score_of(prediction) if keep_when is not None else None
        if status >= 400:
            reason, rate = "error", 1.0
        elif keep_when is not None and score is not None and keep_when.evaluate(value=score):
            reason, rate = "keep_when", 1.0
        elif (
            sample_point(
                f"{model}\x00"
                + (
                    event_id
                    or _content_key(model_version, ts_ms, prediction, latency_ms, status, segment)
                )
            )
            < cfg.sample_rate
        ):
            reason, rate = "sample", cfg.sample_rate
        else:
            return None
        # A kept event without an id is named by the hash of everything it holds.
        identity = (
            event_id
            or hashlib.sha256(
                _json.encode(
                    [model, model_version, ts_ms, features, prediction, latency_ms, status, segment]
                )
            ).hexdigest()
        )
        if any(type(v) is list for v in features.values()):
            features = {
                k: _array(v, cfg) if type(v) is list and k not in cfg.pii else v
                for k, v in features.items()
            }
        names = self._categorical.get(model)
        if names:
            # One key per category however it was typed (1, 1.0, "1"), as in profiles and
            # sketches (docs/statistics.md); a model without a profile yet logs values as sent.
            features = {k: category_key(v) if k in names else v for k, v in features.items()}
        if cfg.pii:
            if self.key is None:
                raise ConfigError(f"model {model!r} lists PII fields but {PII_KEY_ENV} is not set")
            key = self.key
            features = {
                k: (hash_pii(v, key) if k in cfg.pii and v is not None else v)
                for k, v in features.items()
            }
            if segment:
                segment = {k: hash_pii(v, key) if k in cfg.pii else v for k, v in segment.items()}
            if event_id and "event_id" in cfg.pii:
                identity = hash_pii(event_id, key)
        return PredictionRow(
            ts=ts_ms,
            model=model,
            model_version=model_version,
            event_id=identity,
            features=_json.encode(features).decode(),
            prediction=_json.encode(prediction).decode(),
            latency_ms=latency_ms,
            status=status,
            segment=_json.encode(segment or {}).decode(),
            kept_because=reason,
            sample_rate=rate,
        )

    def rows(self, events: Iterable[Any]) -> list[PredictionRow]:
        """Rows for decoded events (anything with ``PredictionEvent``'s attributes)."""
        out: list[PredictionRow] = []
        # Most events are routine, carry an id and are sampled out: decide those here, in a
        # few operations, before building anything (the same decision as :meth:`row`).
        rates, fallback = self._sample_rates, self._default_rate
        # Per model: None when more than the sampler decides (keep_when), else the CRC-32 of
        # ``model + "\x00"`` (the key's common head) and the rate times 2**32 (both exact, so
        # ``crc >= bound`` is ``sample_point(model + "\x00" + key) >= rate``, exactly).
        plans: dict[str, tuple[int, float] | None] = {}
        crc32, last, plan = zlib.crc32, None, None
        for event in events:
            model = event.model
            if model != last:
                last = model
                if model in plans:
                    plan = plans[model]
                else:
                    rate = rates.get(model, fallback)
                    plan = plans[model] = (
                        None if rate is None else (crc32(f"{model}\x00".encode()), rate * 2.0**32)
                    )
            if plan is not None and event.status < 400:
                key = event.event_id or _content_key(
                    event.model_version,
                    event.ts_ms,
                    event.prediction,
                    event.latency_ms,
                    event.status,
                    event.segment,
                )
                if crc32(key.encode(), plan[0]) >= plan[1]:
                    continue
            row = self.row(
                model=event.model,
                model_version=event.model_version,
                ts_ms=event.ts_ms,
                event_id=event.event_id,
                features=_mapping(event.features),
                prediction=event.prediction,
                latency_ms=event.latency_ms,
                status=event.status,
                segment=event.segment,
            )
            if row is not None:
                out.append(row)
        return out

    def block_rows(self, block: ColumnBatch) -> list[PredictionRow]:
        """:meth:`rows` of the events of a batch in columns, deciding from the columns and
        building only the events it keeps (the same rows, in the same order)."""
        rate = self._sample_rates.get(block.model, self._default_rate)
        if rate is None:  # keep_when decides: every event is looked at
            return self.rows(block.events())
        crc32, head = zlib.crc32, zlib.crc32(f"{block.model}\x00".encode())
        bound = rate * 2.0**32
        ids, statuses = block.column("event_id"), block.column("status")
        if block.status is None and None not in ids and "" not in ids:  # the usual case
            keep = [i for i, e in enumerate(ids) if crc32(e.encode(), head) < bound]
            return self.rows([block.event(i) for i in keep])
        keep = []
        for i, event_id in enumerate(ids):
            status = statuses[i]
            if status is not None and status >= 400:
                keep.append(i)
                continue
            key = event_id or _content_key(
                block.model_version,
                block.ts[i],
                None if block.prediction is None else block.prediction[i],
                None if block.latency_ms is None else block.latency_ms[i],
                200 if status is None else status,
                block.segment_of(i),
            )
            if crc32(key.encode(), head) < bound:
                keep.append(i)
        return self.rows([block.event(i) for i in keep])
