"""A shadow model's predictions paired with its primary's by ``event_id``, tallied per window.

A shadow (``models.<shadow>.shadow_of: <primary>``) scores the same requests as its primary,
under its own model name: it gets every row of a model of its own, and this module pairs its
predictions with the primary's, the way the label join pairs labels
(:mod:`drifthouse.stream.labels.join`), and writes per window of the primary's event time
(``feature = '__prediction__'``, ``segment = 'shadow=<shadow>'``, docs/metrics.md "Version
comparisons and shadows"):

- ``shadow_pairs``: the primary's predictions whose shadow came;
- ``shadow_missing``: the primary's predictions whose shadow did not come in time;
- ``shadow_agreement``: the share of pairs serving the same class (the classes sent, or a
  score in [0, 1] against the primary's ``threshold``; not for regression models);
- ``shadow_score_mae``: the mean absolute difference of the two scores.

Both sides are the on-time predictions the merge stage already receives for the label join.
Two predictions pair when their times are at most ``shadow_wait`` (5 minutes by default)
apart. A prediction waits for its partner until the watermark passes its time plus
``shadow_wait`` plus one pane (the longest hop of the windows kept in the stream): by then any
partner within the wait, being on time in its own partition, has reached the merger. Then it
leaves, and a primary without its shadow counts as missing. So what is held is the
predictions of that last stretch of event time, a primary's window is written once the
watermark has passed its end plus the same, and whether two predictions pair depends on
their times alone, never on when they arrived. Sums of absolute differences are kept in
units of 1e-9 in integers, so no order of pairing changes a digit.

What is held and tallied goes into the merge stage's snapshot (:meth:`ShadowPairs.to_bytes`),
so a restarted merger writes the same rows.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from drifthouse.config import Config
from drifthouse.detectors.model_sketch import PREDICTION_FEATURE
from drifthouse.events import LabelEvent
from drifthouse.stream.labels.records import PredictionRecord
from drifthouse.stream.results import WindowResult, window_rows
from drifthouse.stream.windows import WindowSpec

__all__ = ["SEGMENT_PREFIX", "ShadowPairs"]

#: The segment of a shadow row: ``shadow=`` and the shadow's model name.
SEGMENT_PREFIX = "shadow="
_NANO = 1_000_000_000

_Key = tuple[int, int, str, str, str]  # (spec index, start, primary, primary version, shadow)


@dataclass
class _Tally:
    pairs: int = 0
    missing: int = 0
    classed: int = 0  # pairs with a class on both sides
    agree: int = 0
    scored: int = 0  # pairs with a score on both sides
    abs_nano: int = 0  # sum of |score - shadow score| in 1e-9 units (exact in any order)


@dataclass
class _Held:
    """One request's predictions waiting for each other: the primary's, the shadow's."""

    primary: PredictionRecord | None = None
    shadow: PredictionRecord | None = None
    paired: bool = False  # later copies of either side are ignored


class _Wire(msgspec.Struct, array_like=True):
    held: list[tuple[str, str, PredictionRecord | None, PredictionRecord | None, bool]]
    expiry: list[tuple[int, str, str]]
    tallies: list[tuple[int, int, str, str, str, int, int, int, int, int, int]]


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(_Wire).decode


@dataclass
class ShadowPairs:
    """Pair shadows' predictions with their primaries' (see the module docstring)."""

    specs: Sequence[WindowSpec]
    #: shadow model -> primary model.
    shadow_of: Mapping[str, str]
    #: shadow model -> how long after its primary its prediction may come (ms).
    wait_ms: Mapping[str, int]
    #: primary model -> threshold of a score in [0, 1], or None (regression: no classes).
    thresholds: Mapping[str, float | None]

    @classmethod
    def from_config(cls, config: Config) -> ShadowPairs | None:
        """The pairs of a deployment's shadows, or ``None`` without any."""
        shadows = {n: m.shadow_of for n, m in config.models.items() if m.shadow_of is not None}
        if not shadows:
            return None
        specs = [WindowSpec.from_config(w) for w in config.windows]
        return cls(
            specs,
            shadows,
            {n: config.models[n].shadow_wait for n in shadows},
            {
                p: None if config.models[p].task == "regression" else config.models[p].threshold
                for p in set(shadows.values())
            },
        )

    def __post_init__(self) -> None:
        self._shadows: dict[str, list[str]] = {}  # primary -> its shadows
        for shadow, primary in sorted(self.shadow_of.items()):
            self._shadows.setdefault(primary, []).append(shadow)
        # (shadow, event id) -> the two predictions; the first of a side wins.
        self._held: dict[tuple[str, str], _Held] = {}
        self._expiry: list[tuple[int, str, str]] = []  # (leaves at, shadow, event id)
        self._tallies: dict[_Key, _Tally] = {}
        # A prediction within the wait of its partner has reached the merger once the
        # watermark has passed the end of its pane: it was on time in its partition.
        self._margin = max(s.hop_ms for s in self.specs if not s.derived)

    def add(self, records: Iterable[PredictionRecord]) -> None:
        """On-time predictions, in the order the merge stage takes them."""
        for r in records:
            if r.event_id is None:
                continue
            if r.model in self.shadow_of:
                self._take(r, r.model, shadow_side=True)
            for shadow in self._shadows.get(r.model, ()):
                self._take(r, shadow, shadow_side=False)

    def _take(self, r: PredictionRecord, shadow: str, *, shadow_side: bool) -> None:
        assert r.event_id is not None
        wait = self.wait_ms[shadow]
        key = (shadow, r.event_id)
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held()
            heapq.heappush(self._expiry, (r.ts_ms + wait + self._margin, shadow, r.event_id))
        mine, other = (held.shadow, held.primary) if shadow_side else (held.primary, held.shadow)
        if held.paired or mine is not None:
            return  # the first of a side wins
        if other is not None and abs(other.ts_ms - r.ts_ms) > wait:
            return  # a partner beyond the wait is none
        if shadow_side:
            held.shadow = r
        else:
            held.primary = r
        if held.primary is not None and held.shadow is not None:
            self._pair(held.primary, held.shadow, shadow)
            held.paired = True

    def to_bytes(self) -> bytes:
        """What is held and tallied, for the merge stage's snapshot."""
        return _ENCODE(
            _Wire(
                held=[
                    (sh, eid, h.primary, h.shadow, h.paired) for (sh, eid), h in self._held.items()
                ],
                expiry=list(self._expiry),
                tallies=[
                    (*key, t.pairs, t.missing, t.classed, t.agree, t.scored, t.abs_nano)
                    for key, t in self._tallies.items()
                ],
            )
        )

    def restore(self, data: bytes) -> None:
        """Resume from :meth:`to_bytes` (before anything is added)."""
        wire = _DECODE(data)
        self._held = {(sh, eid): _Held(a, b, paired) for sh, eid, a, b, paired in wire.held}
        self._expiry = [tuple(e) for e in wire.expiry]  # type: ignore[misc]
        heapq.heapify(self._expiry)
        self._tallies = {
            (k, start, p, v, sh): _Tally(*counts) for k, start, p, v, sh, *counts in wire.tallies
        }

    def with_shadows(self, labels: Sequence[LabelEvent]) -> list[LabelEvent]:
        """``labels`` and, for each label of a primary, a copy for each of its shadows: the
        truth of a request is the same for both, so both get their label metrics."""
        out = list(labels)
        for lab in labels:
            for shadow in self._shadows.get(lab.model, ()):
                out.append(msgspec.structs.replace(lab, model=shadow))
        return out

    def _windows(self, ts: int) -> Iterable[tuple[int, int]]:
        for k, spec in enumerate(self.specs):
            if spec.derived:
                continue
            last = ts // spec.hop_ms * spec.hop_ms
            for j in range(spec.panes_per_window):
                yield k, last - j * spec.hop_ms

    def _tally(self, primary: PredictionRecord, shadow: str) -> Iterable[_Tally]:
        for k, start in self._windows(primary.ts_ms):
            key = (k, start, primary.model, primary.model_version, shadow)
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = _Tally()
            yield tally

    def _pair(self, primary: PredictionRecord, shadow: PredictionRecord, name: str) -> None:
        same: bool | None = None
        if primary.pred_class is not None and shadow.pred_class is not None:
            same = primary.pred_class == shadow.pred_class
        threshold = self.thresholds.get(primary.model)
        a, b = primary.score, shadow.score
        scored = math.isfinite(a) and math.isfinite(b)
        if same is None and scored and threshold is not None and 0 <= min(a, b) <= max(a, b) <= 1:
            same = (a >= threshold) == (b >= threshold)
        diff = round(abs(a - b) * _NANO) if scored else 0
        for t in self._tally(primary, name):
            t.pairs += 1
            if same is not None:
                t.classed += 1
                t.agree += same
            if scored:
                t.scored += 1
                t.abs_nano += diff

    def flush(self, ready: int | None, *, run_id: str, computed_at: int) -> list[WindowResult]:
        """Let go of the predictions whose wait the watermark ``ready`` has passed (all when
        ``None``) and return the windows now complete, in order."""
        while self._expiry and (ready is None or self._expiry[0][0] <= ready):
            _, shadow, eid = heapq.heappop(self._expiry)
            held = self._held.pop((shadow, eid), None)
            if held is not None and held.primary is not None and not held.paired:
                for t in self._tally(held.primary, shadow):
                    t.missing += 1
        due = sorted(key for key in self._tallies if ready is None or self._due(key) <= ready)
        return [self._result(key, self._tallies.pop(key), run_id, computed_at) for key in due]

    def _due(self, key: _Key) -> int:
        k, start, _, _, shadow = key
        return start + self.specs[k].size_ms + self.wait_ms[shadow] + self._margin

    def _result(self, key: _Key, t: _Tally, run_id: str, computed_at: int) -> WindowResult:
        k, start, primary, version, shadow = key
        spec = self.specs[k]
        f = PREDICTION_FEATURE
        values = [
            (f, "shadow_pairs", float(t.pairs), t.pairs, ""),
            (f, "shadow_missing", float(t.missing), t.missing, ""),
        ]
        if t.classed:
            values.append((f, "shadow_agreement", t.agree / t.classed, t.classed, ""))
        if t.scored:
            values.append((f, "shadow_score_mae", t.abs_nano / _NANO / t.scored, t.scored, ""))
        rows = window_rows(
            spec, start, primary, version, SEGMENT_PREFIX + shadow, values,
            run_id=run_id, computed_at=computed_at,
        )  # fmt: skip
        return WindowResult(spec, start, start + spec.size_ms, primary, version, rows, [])
