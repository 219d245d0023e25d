"""The automatic reference of a model without a profile file (``reference: auto``).

A model that names no profile (not listed under ``models:``, or listed without ``reference``)
runs on an automatic reference unless ``metrics.default_reference`` is ``none``. Its reference
is built by the merge stage from its **first span of traffic**, by event time:

- the span starts at the first window of the first configured window spec (``windows[0]``,
  its tumbling grid: windows starting at a multiple of its size) that holds an event of the
  model, and lasts ``reference_span`` (default ``metrics.auto_reference_span``, 1h) rounded up
  to whole windows of that spec;
- it is built once every partition's watermark has passed the span's end (at the end of a
  bounded input, from what there is), from the span's on-time events sorted by event time
  (ties by the event's bytes): the same events give the same reference whatever their arrival
  order, partitioning or batching;
- with the rules of ``drifthouse profile`` (:func:`~drifthouse.profiles.build.profile_from_events`):
  numeric versus categorical feature kinds are inferred from the values, PII features are left
  out, and the prediction, latency and status baselines come along;
- it is stored in ``references`` like any profile (``model_version = 'auto'``, ``source``
  naming the span) and carried in the merge stage's snapshots, so a restarted merger uses the
  same one.

Until it is built, the model's windows are held by the merge stage (its panes keep their events,
see :mod:`drifthouse.detectors.raw_panes`); then every window is evaluated on it. Windows that
start inside the span get quality metrics but no drift metrics: their events are the reference.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

import msgspec

from drifthouse.detectors.model_state import ModelState
from drifthouse.detectors.raw_panes import decode_events, leaves
from drifthouse.errors import ProfileError
from drifthouse.logs import get_logger
from drifthouse.profiles.build import profile_from_events
from drifthouse.profiles.sketches import AutoReference, Sketches

__all__ = [
    "AUTO_VERSION",
    "DRIFT_METRICS",
    "SMALL_REFERENCE",
    "AutoReference",
    "build_auto_reference",
    "source_of",
    "span_end",
]

log = get_logger("auto_reference")

#: ``model_version`` of an automatic reference in ``references``.
AUTO_VERSION = "auto"
#: Comparisons with the reference: not written for windows inside the reference's own span.
DRIFT_METRICS = frozenset(
    {
        "psi", "kl", "ks", "ks_pvalue", "js", "wasserstein", "chi2", "chi2_pvalue",
        "importance_shift", "psi_contribution", "js_contribution", "mass_shift",
        "psi_segment_share",
    }
    | {"ks_qvalue", "chi2_qvalue"}  # the q-values of those p-values (stream/results.py)
)  # fmt: skip


#: An automatic reference with fewer events than this is said to be small (the replay summary,
#: a warning): a PSI of 10 bins is about 0.02 by chance alone at 1,000 events a side, 0.09 at
#: 100 (docs/statistics.md, "False alarms").
SMALL_REFERENCE = 1_000


def span_end(start: int, span_ms: int, window_ms: int) -> int:
    """The end of a span starting at ``start``: ``span_ms`` rounded up to whole windows."""
    return start + -(-span_ms // window_ms) * window_ms


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def build_auto_reference(
    model: str, start: int, end: int, states: Iterable[ModelState], sketches: Sketches
) -> AutoReference:
    """The reference of ``model`` from the events kept in ``states`` (the disjoint windows of
    the span, every partition's share). Events outside ``[start, end)`` are left out."""
    raw = [
        (event.ts_ms, data, event)
        for state in states
        if state.raw is not None
        for leaf in leaves(state.raw)
        for data, event in zip(leaf.events, decode_events(leaf.events), strict=True)
        if start <= event.ts_ms < end
    ]
    raw.sort(key=lambda t: (t[0], t[1]))
    if not raw:
        log.warning("reference.auto_empty", model=model, span_start=start, span_end=end)
        return AutoReference(model, start, end, None)
    digest = hashlib.sha256()
    for _, data, _ in raw:
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    settings = sketches.models.get(model)
    try:
        profile = profile_from_events(
            [msgspec.to_builtins(event) for _, _, event in raw],
            model=model,
            model_version=AUTO_VERSION,
            created_at=_rfc3339(end),
            source_digest=digest.hexdigest(),
            settings=sketches.metrics,
            exclude=list(settings.pii) if settings is not None else None,
            threshold=settings.threshold if settings is not None else 0.5,
            task=settings.task if settings is not None else "auto",
        )
    except ProfileError as exc:
        log.warning("reference.auto_failed", model=model, error=str(exc))
        return AutoReference(model, start, end, None)
    if len(raw) < SMALL_REFERENCE:
        log.warning(
            "reference.auto_small", model=model, events=len(raw), fewer_than=SMALL_REFERENCE,
            fix="drift against so small a reference is noisy: set a longer reference_span "
            "(models.<name> or metrics.auto_reference_span) or profile the model",
        )  # fmt: skip
    log.info(
        "reference.auto_built",
        model=model,
        span_start=_rfc3339(start),
        span_end=_rfc3339(end),
        events=len(raw),
        numeric=[f.name for f in profile.numeric],
        categorical=[f.name for f in profile.categorical],
    )
    return AutoReference(model, start, end, profile)


def source_of(ref: AutoReference) -> str:
    """The ``source`` column of its ``references`` row."""
    return f"auto {_rfc3339(ref.start)}/{_rfc3339(ref.end)}"
