"""PII: the names listed under ``pii`` (globally and per model) are stored only as keyed hashes.

A name can be a feature, a segment attribute or ``event_id``. Wherever drifthouse stores such a
value (the prediction log's ``features``, ``segment`` and ``event_id``; the ``segment`` column of
``metrics``, ``sketches`` and ``alerts``; the label join in the merger's snapshots) it writes
``hmac-sha256:<hex>``, an HMAC-SHA256 of the value's JSON under the secret in
``DRIFTHOUSE_PII_KEY`` (at least 32 bytes). Equal values give equal hashes, so they still join
and group, but cannot be read back or guessed from a dictionary without the key. PII features
are never sketched (their bins and categories would reach the store).

Example
-------
>>> from drifthouse.config import Config
>>> from drifthouse.events import PredictionEvent
>>> pii = PiiFields(Config.model_validate({"pii": ["user"]}), key=b"k" * 32)
>>> e = PredictionEvent(model="m", ts_ms=0, features={}, segment={"user": "ann", "country": "DE"})
>>> protected = pii.protect_events([e])[0].segment
>>> protected["country"], protected["user"][:12]
('DE', 'hmac-sha256:')
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from drifthouse.errors import ConfigError

if TYPE_CHECKING:
    from drifthouse.config.schema import Config
    from drifthouse.config.sections import ModelConfig
    from drifthouse.events.batch_columns import ColumnBatch

__all__ = ["MIN_KEY_BYTES", "PII_KEY_ENV", "PiiFields", "hash_pii", "pii_key_from_env"]

PII_KEY_ENV = "DRIFTHOUSE_PII_KEY"
MIN_KEY_BYTES = 32  # HMAC-SHA256's own output size: a shorter key weakens the hash
_json = msgspec.json.Encoder(order="sorted")
_E = TypeVar("_E")


def hash_pii(value: object, key: bytes) -> str:
    """A keyed hash of one value: equal values give equal hashes, for one key."""
    return "hmac-sha256:" + hmac.new(key, _json.encode(value), hashlib.sha256).hexdigest()


def pii_key_from_env(
    models: Mapping[str, ModelConfig], env: Mapping[str, str] | None = None
) -> bytes | None:
    """The PII hashing key from ``DRIFTHOUSE_PII_KEY``.

    Raises
    ------
    ConfigError
        When a model lists PII names and the variable is unset, or when the key is shorter than
        32 bytes (its value is never shown).
    """
    env = os.environ if env is None else env
    value = env.get(PII_KEY_ENV, "")
    needing = sorted(name for name, cfg in models.items() if cfg.pii)
    fix = f"set {PII_KEY_ENV} to a long random secret, e.g. `openssl rand -hex 32`"
    named = [name for name in needing if name != "*"]  # "*": models not configured (global `pii`)
    where = f"models.{named[0]}.pii" if named else "pii" if needing else PII_KEY_ENV
    if value:
        key = value.encode("utf-8")
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                f"{PII_KEY_ENV} must be at least {MIN_KEY_BYTES} bytes (got {len(key)})",
                [(where, f"the PII key must be at least {MIN_KEY_BYTES} bytes; {fix}")],
            )
        return key
    if needing:
        raise ConfigError(
            f"PII fields are listed ({where}) but {PII_KEY_ENV} is not set",
            [(where, f"{fix}, so PII fields can be hashed")],
        )
    return None


class PiiFields:
    """The PII names of each model, and the hashing of event ids and segment values.

    Parameters
    ----------
    config:
        Where ``pii`` is listed (global names apply to every model, configured or not).
    key:
        The hashing key; read from ``DRIFTHOUSE_PII_KEY`` the first time a value needs hashing
        when ``None``.
    """

    def __init__(self, config: Config, key: bytes | None = None) -> None:
        self._config = config
        self._key = key
        self._fields: dict[str, frozenset[str]] = {}
        self.any = bool(config.pii) or any(m.pii for m in config.models.values())

    def of(self, model: str) -> frozenset[str]:
        """The PII names of ``model``."""
        found = self._fields.get(model)
        if found is None:
            found = self._fields[model] = frozenset(self._config.model(model).pii)
        return found

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = pii_key_from_env({"*": self._config.model("*")} | self._config.models)
            if self._key is None:  # nothing lists PII: hashing was never needed
                raise ConfigError(f"no PII is configured, so {PII_KEY_ENV} is not read")
        return self._key

    def segment(self, model: str, segment: Mapping[str, str]) -> dict[str, str]:
        """``segment`` with the values of PII attributes hashed."""
        fields = self.of(model)
        return {k: hash_pii(v, self.key) if k in fields else v for k, v in segment.items()}

    def event_id(self, model: str, event_id: str | None) -> str | None:
        """``event_id``, hashed when ``event_id`` is a PII name of ``model``."""
        if event_id and "event_id" in self.of(model):
            return hash_pii(event_id, self.key)
        return event_id

    def protect_block(self, block: ColumnBatch) -> ColumnBatch:
        """A batch in columns with PII segment values and event ids hashed, column by column
        (what :meth:`protect_events` does to its events); the batch itself when it has nothing
        to hash. PII features are left as they are: no sketch reads them."""
        fields = self.of(block.model)
        hashed = [k for k in block.segment if k in fields]
        ids = block.event_id if "event_id" in fields else None
        if not hashed and ids is None:
            return block
        key = self.key
        segment = {
            k: [None if v is None else hash_pii(v, key) for v in c] if k in fields else c
            for k, c in block.segment.items()
        }
        if ids is not None:
            ids = [hash_pii(e, key) if e else e for e in ids]
        return replace(block, segment=segment, event_id=ids if ids is not None else block.event_id)

    def protect_events(self, events: Sequence[_E]) -> list[_E]:
        """Prediction (or label) events with PII segment values and event ids hashed; events
        with nothing to hash are passed on as they are."""
        if not self.any:
            return list(events)
        out: list[_E] = []
        for e in events:
            ev: Any = e
            fields = self.of(ev.model)
            changes: dict[str, Any] = {}
            segment = getattr(ev, "segment", None)
            if segment and not fields.isdisjoint(segment):
                changes["segment"] = self.segment(ev.model, segment)
            if ev.event_id and "event_id" in fields:
                changes["event_id"] = hash_pii(ev.event_id, self.key)
            out.append(msgspec.structs.replace(ev, **changes) if changes else e)
        return out
