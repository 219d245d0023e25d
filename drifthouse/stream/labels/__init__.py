"""Delayed labels: join them to their predictions, and keep the label metrics of each window.

Labels (topic ``labels``: ``{"event_id", "model", "ts", "label"}``) arrive minutes to days
after their prediction, before it now and then, and in any order. Label metrics belong to the
window of the **prediction's** event time, so they are kept apart from the prediction windows
(docs/model-performance.md). :mod:`~drifthouse.stream.labels.records` holds what the join
takes and gives (records, pairs, dropped and late labels, what a held entry costs); then, in
the order the data goes through them:

- :mod:`~drifthouse.stream.labels.join`: :class:`LabelJoin` holds, per model, the predictions
  of the last ``horizon`` (7 days by default, ``metrics.label_horizon``) by ``event_id``, and
  labels that came before their prediction. A label meeting its prediction (whichever came
  first) becomes a :class:`JoinedPair`. Entries older than ``horizon`` before the model's clock
  (the largest event time seen, of predictions and labels; never the wall clock) are evicted.
  Labels that find no prediction within the horizon are counted as ``unmatched``; labels too
  old to be held (their time already beyond the horizon) as ``expired``; a second label for one
  prediction, or a second early label for one id, as ``duplicate`` (the first label wins). The
  join is snapshotted with :meth:`LabelJoin.to_bytes` so a restart resumes it.
- :mod:`~drifthouse.stream.labels.windows`: :class:`LabelWindows` folds joined pairs into
  per-pane :class:`~drifthouse.detectors.label_sketch.LabelState`s, per (model, model version,
  segment), counts the predictions of each pane (for ``labels_coverage``), and hands out the
  windows that changed since they were last written (:meth:`LabelWindows.flush`): a late label
  rewrites its window, under the same key, so the store keeps the newest row.
- :mod:`~drifthouse.stream.labels.stage`: :class:`LabelStage` wires the two for a pipeline.
- :mod:`~drifthouse.stream.labels.late`: with ``metrics.late_labels``, what the join and the
  windows let go is stored, and :func:`~drifthouse.stream.labels.late.join_late_labels` joins
  it in ClickHouse and rewrites the old windows (``drifthouse labels join``).

The label sketches themselves (what a window's accuracy or AUC is) live in
:mod:`drifthouse.detectors.label_sketch`.

Determinism: the same predictions and labels in the same order give the same pairs and the same
states. The pairs do not depend on how the two streams interleave unless an entry is near the
horizon; count-based metrics do not depend on the order of pairs, float sums (regression) only
to rounding.
"""

from __future__ import annotations

from drifthouse.stream.labels.join import LabelJoin
from drifthouse.stream.labels.records import (
    DAY_MS,
    DroppedLabel,
    JoinedPair,
    JoinStats,
    LateLabel,
    PredictionRecord,
    decode_records,
    encode_records,
    record_bytes,
)
from drifthouse.stream.labels.stage import LabelStage, sketch_for_model
from drifthouse.stream.labels.windows import LabelWindow, LabelWindows

__all__ = [
    "DAY_MS",
    "DroppedLabel",
    "JoinStats",
    "JoinedPair",
    "LabelJoin",
    "LabelStage",
    "LabelWindow",
    "LabelWindows",
    "LateLabel",
    "PredictionRecord",
    "decode_records",
    "encode_records",
    "record_bytes",
    "sketch_for_model",
]
