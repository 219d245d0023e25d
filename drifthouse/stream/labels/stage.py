"""The label join and the label windows of a deployment, wired for a pipeline.

:class:`LabelStage` feeds the on-time predictions and the decoded labels to the join
(:mod:`drifthouse.stream.labels.join`), the pairs and the labels that joined nothing to the
windows (:mod:`drifthouse.stream.labels.windows`), and hands out the ``metrics`` rows of the
windows whose label metrics changed; :func:`sketch_for_model` picks each model's label sketch.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import msgspec

from drifthouse.config import Config
from drifthouse.detectors.label_sketch import LabelSketch
from drifthouse.detectors.reference import Profile
from drifthouse.errors import SketchError
from drifthouse.events import LabelEvent, PredictionEvent
from drifthouse.pii import PiiFields
from drifthouse.rows import LabelPaneRow, LateLabelRow, LatePredictionRow, MetricRow
from drifthouse.stream.labels.estimates import HeldEstimates
from drifthouse.stream.labels.join import LabelJoin
from drifthouse.stream.labels.records import JoinedPair, LateLabel, PredictionRecord
from drifthouse.stream.labels.windows import LabelWindow, LabelWindows
from drifthouse.stream.windows import WindowSpec

if TYPE_CHECKING:
    from drifthouse.stream.shadow import ShadowPairs

__all__ = ["LabelStage", "sketch_for_model"]

_JSON = msgspec.json.Encoder().encode


def sketch_for_model(
    profile: Profile | None,
    *,
    task: Literal["auto", "classification", "regression"] = "auto",
    threshold: float = 0.5,
    bins: int = 1_000,
) -> LabelSketch:
    """A model's :class:`LabelSketch` from its settings: ``task`` and ``threshold`` from
    ``ModelConfig``; with ``task: auto`` the profile's baseline task decides when it has one;
    the classes are the profile's prediction categories when its prediction is categorical,
    and the labels of a two-class ``{class: probability}`` prediction are mapped to 0/1 by
    the profile's ``binary_classes``."""
    classes: Sequence[str] = ()
    binary_classes: Sequence[str] = ()
    if profile is not None:
        binary_classes = profile.baselines.binary_classes
        if task == "auto" and profile.baselines.task is not None:
            task = profile.baselines.task
        if profile.prediction is not None and profile.prediction.kind == "categorical":
            classes = profile.prediction.categories
    return LabelSketch(
        task=task, threshold=threshold, classes=classes, bins=bins, binary_classes=binary_classes
    )


class LabelStage:
    """The join and the label windows of a deployment, wired: what a pipeline calls.

    Feed it the on-time prediction events (in each partition's order, after the prediction
    stage has decided lateness) and the decoded label events; ask it for the ``metrics`` rows of
    windows whose label metrics changed once the prediction watermark has passed them.

    Examples
    --------
    >>> from drifthouse.config import Config
    >>> stage = LabelStage.from_config(Config(), profiles={})
    >>> ev = PredictionEvent(model="m", ts_ms=1_000, features={}, event_id="a", prediction=0.9)
    >>> stage.add_predictions([ev])
    >>> stage.add_labels([LabelEvent(event_id="a", model="m", ts_ms=9_000, label=1)])
    >>> rows = stage.flush(None, run_id="live", computed_at=0)
    >>> sorted({(r.window, r.metric) for r in rows if r.metric in {"recall", "labels_coverage"}})
    [('1h', 'labels_coverage'), ('1h', 'recall')]
    """

    def __init__(
        self, join: LabelJoin, windows: LabelWindows, pii: PiiFields | None = None
    ) -> None:
        self.join = join
        self.windows = windows
        # Labels are joined on event ids hashed as their predictions' were (PII event ids).
        self.pii = pii
        #: Shadow models paired with their primaries: they see the same records and labels.
        self.shadows: ShadowPairs | None = None
        # The prediction windows' estimates, for estimation_error_* (estimates.py).
        self.estimates = HeldEstimates()

    @classmethod
    def from_config(cls, config: Config, profiles: Mapping[str, Profile]) -> LabelStage:
        """Windows, horizon, and each model's task, threshold and classes from the config tree
        and the reference profiles."""
        specs = [WindowSpec.from_config(w) for w in config.windows]
        horizon = config.metrics.label_horizon
        built: dict[str, LabelSketch] = {}

        def sketch_for(model: str) -> LabelSketch:
            sk = built.get(model)
            if sk is None:
                mc = config.models.get(model)
                sk = built[model] = sketch_for_model(
                    profiles.get(model),
                    task=mc.task if mc is not None else "auto",
                    threshold=mc.threshold if mc is not None else 0.5,
                )
            return sk

        windows = LabelWindows(
            specs,
            sketch_for,
            horizon_ms=horizon,
            rewrite_every_ms=config.metrics.label_rewrite_every,
            max_segment_values=config.metrics.max_segment_values,
            max_segment_attributes=config.metrics.max_segment_attributes,
        )
        windows.spill = config.metrics.late_labels
        return cls(
            LabelJoin(
                horizon_ms=horizon,
                max_entries=config.metrics.label_join_max_entries,
                max_bytes=config.metrics.label_join_max_bytes,
                spill=config.metrics.late_labels,
            ),
            windows,
            PiiFields(config),
        )

    def add_predictions(self, events: Iterable[PredictionEvent]) -> None:
        """On-time prediction events, in order: counted for coverage, held for their labels."""
        if self.pii is not None:
            events = self.pii.protect_events(list(events))
        records = [PredictionRecord.from_event(e) for e in events]
        self.add_records(records)

    def add_records(self, records: Sequence[PredictionRecord]) -> None:
        """The same as :meth:`add_predictions` for records built elsewhere (a source worker
        publishing :func:`encode_records` beside its partials)."""
        if self.shadows is not None:
            self.shadows.add(records)
        self.windows.add_predictions(records)
        self.windows.add_pairs(self.join.add_predictions(records))
        self.windows.add_dropped(self.join.take_dropped())

    def add_labels(self, labels: Iterable[LabelEvent]) -> None:
        """Decoded label events, in order."""
        if self.shadows is not None:
            labels = self.shadows.with_shadows(list(labels))
        if self.pii is not None:
            labels = self.pii.protect_events(list(labels))
        self.windows.add_pairs(self.join.add_labels(labels))
        self.windows.add_dropped(self.join.take_dropped())

    def add_interleaved(
        self, steps: Iterable[tuple[Sequence[PredictionRecord], Sequence[LabelEvent]]]
    ) -> None:
        """Predictions and labels in the order given (each step: its records, then its labels).

        The same as :meth:`add_records` and :meth:`add_labels` called step by step, with the
        windows updated once: the join goes one item at a time in this order, and the windows'
        results do not depend on how their inputs are grouped (counts add up, pairs are folded
        in the same order, and a pair's segment values were admitted with its prediction).
        """
        records: list[PredictionRecord] = []
        pairs: list[JoinedPair] = []
        join = self.join
        shadows = self.shadows
        for recs, labels in steps:
            if recs:
                if shadows is not None:
                    shadows.add(recs)
                records += recs
                pairs += join.add_predictions(recs)
            if labels:
                if shadows is not None:
                    labels = shadows.with_shadows(labels)
                pairs += join.add_labels(labels)
        self.windows.add_predictions(records)
        self.windows.add_pairs(pairs)
        self.windows.add_dropped(join.take_dropped())

    def flush(self, ready_until: int | None, *, run_id: str, computed_at: int) -> list[MetricRow]:
        """Rows of the windows to (re)write: ``ready_until`` is the prediction watermark the
        merge stage goes by (``MergeStage.ready_until()``), ``None`` at the end of an input."""
        rows: list[MetricRow] = []
        for _, window_rows in self.flush_windows(
            ready_until, run_id=run_id, computed_at=computed_at
        ):
            rows += window_rows
        return rows

    def flush_windows(
        self, ready_until: int | None, *, run_id: str, computed_at: int, force: bool = False
    ) -> list[tuple[LabelWindow, list[MetricRow]]]:
        """:meth:`flush`, window by window (for one alert evaluation per window); the rows of
        a window with an estimate (:meth:`note_estimates`) carry ``estimation_error_*``."""
        out = []
        for w in self.windows.flush(ready_until, force=force):
            rows = self.windows.rows(w, run_id=run_id, computed_at=computed_at)
            derived = self.windows.specs[w.spec_index].derived  # its estimate may come later
            out.append((w, rows + self.estimates.errors(rows, keep=derived)))
        if ready_until is not None:
            self.estimates.forget(ready_until, self.windows.horizon_ms)
        if ready_until is None:  # the end of a bounded input: hand on what is held
            self.join.spill_all()
            self.windows.spill_all()
        return out

    def note_estimates(self, rows: Iterable[MetricRow]) -> list[MetricRow]:
        """A prediction window's rows as written: its ``estimated_*`` are kept for the
        estimation errors of its label window; returned: the errors of a label window written
        before it (a derived window's, see :mod:`~drifthouse.stream.labels.estimates`)."""
        return self.estimates.note(rows)

    def take_spill_rows(
        self, *, run_id: str, computed_at: int
    ) -> list[LateLabelRow | LatePredictionRow | LabelPaneRow]:
        """What the join and the windows handed on since the last call, as rows of the late
        join's tables (``labels``, ``label_predictions``, ``label_panes``); none unless
        ``metrics.late_labels`` is on."""
        predictions, labels = self.join.take_spilled()
        panes, diverted = self.windows.take_spilled()
        for pair in diverted:  # seq 0: the stream took this label first
            r = pair.prediction
            predictions.append(r)
            labels.append(
                LateLabel(r.model, r.event_id or "", pair.label_ts_ms, pair.label, 0, "late_pane")
            )
        rows: list[LateLabelRow | LatePredictionRow | LabelPaneRow] = [
            LateLabelRow(
                ts=lab.ts_ms,
                model=lab.model,
                event_id=lab.event_id,
                label=_JSON(lab.label).decode(),
                seq=lab.seq,
                reason=lab.reason,
                run_id=run_id,
            )
            for lab in labels
        ]
        rows += [
            LatePredictionRow(
                ts=r.ts_ms,
                model=r.model,
                model_version=r.model_version,
                event_id=r.event_id or "",
                score=r.score,
                pred_class=r.pred_class,
                segment=_JSON(r.segment).decode(),
                run_id=run_id,
            )
            for r in predictions
        ]
        specs = self.windows.specs
        rows += [
            LabelPaneRow(
                pane_start=p.key[3],
                window=specs[p.key[2]].name,
                model=p.key[0],
                model_version=p.key[1],
                segment=p.segment,
                state=base64.b64encode(p.blob).decode() if p.blob is not None else "",
                counters=p.counters,
                final_until=p.final_until,
                run_id=run_id,
                computed_at=computed_at,
            )
            for p in panes
        ]
        return rows

    def to_bytes(self) -> bytes:
        """Snapshot of the join and the windows (store it with the offsets it covers)."""
        return msgspec.msgpack.encode(
            (self.join.to_bytes(), self.windows.to_bytes(), self.estimates.to_bytes())
        )

    def restore(self, data: bytes) -> None:
        """Resume from :meth:`to_bytes` (before anything is added)."""
        try:
            # Snapshots written before estimates were held have two parts.
            parts = msgspec.msgpack.decode(data, type=tuple[bytes, ...])
        except msgspec.DecodeError as exc:
            raise SketchError(f"not a serialised label stage: {exc}") from exc
        if len(parts) not in (2, 3):
            raise SketchError(f"not a serialised label stage: {len(parts)} parts (expected 2 or 3)")
        self.join = LabelJoin.from_bytes(parts[0])
        self.windows.restore(parts[1])
        self.estimates = HeldEstimates.from_bytes(parts[2]) if len(parts) == 3 else HeldEstimates()
