"""Reference profiles in the store: table ``references`` and the reference histograms in ``sketches``.

A profile (docs/statistics.md, "Reference profiles") is stored twice: whole, as JSON in ``references``, and as
``sketches`` rows with ``run_id = 'reference'`` and ``window = 'reference'`` so SQL can compare any
time range with it (recipe ``psi_range``):

- numeric features: the fine grid (``kind = 'hist'``, ``metric = ''``, the grid the pipeline's
  window sketches use) and the PSI bins (``kind = 'hist'``, ``metric = 'psi'``; their edges are a
  subset of the fine edges, so window counts coarsen onto them exactly);
- categorical features: ``kind = 'categories'``, the top categories plus ``__other__``;
- the prediction, as feature ``__prediction__``, by its kind.

Example
-------
>>> import numpy as np
>>> from drifthouse.config import MetricsConfig
>>> from drifthouse.profiles.columns import build_profile
>>> profile = build_profile(model="fraud", model_version="1", created_at="2026-01-01T00:00:00Z",
...                         source_digest="0" * 64, settings=MetricsConfig(),
...                         features={"amount": np.arange(1000.0), "country": ["de", "fr"] * 500})
>>> ref, sketches = reference_rows(profile)
>>> [(s.feature, s.kind, s.metric, len(s.counts)) for s in sketches]
[('amount', 'hist', '', 100), ('amount', 'hist', 'psi', 10), ('country', 'categories', '', 3)]
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from drifthouse.errors import ProfileError
from drifthouse.rows import SketchRow
from drifthouse.sinks.base import Sink
from drifthouse.sinks.tables import ReferenceRow

if TYPE_CHECKING:
    from drifthouse.detectors.reference import FeatureProfile, Profile

__all__ = ["REFERENCE_RUN_ID", "reference_rows", "store_reference"]

REFERENCE_RUN_ID = "reference"
OTHER_LABEL = "__other__"  # drifthouse.detectors.categorical.OTHER_LABEL


def _epoch_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ProfileError(f"profile created_at must be an RFC 3339 time (got {text!r})") from None
    if moment.tzinfo is None:
        raise ProfileError(
            f"profile created_at needs a time zone, e.g. '2026-01-01T00:00:00Z' (got {text!r})"
        )
    return int(moment.timestamp() * 1000)


def reference_rows(profile: Profile, *, source: str = "") -> tuple[ReferenceRow, list[SketchRow]]:
    """The ``references`` row and the reference ``sketches`` rows of a profile."""
    created = _epoch_ms(profile.created_at)
    ref = ReferenceRow(
        model=profile.model,
        model_version=profile.model_version,
        created_at=created,
        digest=profile.source_digest,
        source=source,
        profile=profile.to_json().decode("utf-8"),
    )

    def row(feature: FeatureProfile, name: str, kind: str, metric: str, edges: list[float],
            labels: list[str], counts: list[int]) -> SketchRow:  # fmt: skip
        return SketchRow(window_start=created, window_end=created, window=REFERENCE_RUN_ID,
                         model=profile.model, model_version=profile.model_version, feature=name,
                         segment="", metric=metric, kind=kind, edges=[float(e) for e in edges],
                         labels=labels, counts=[int(c) for c in counts], n=int(sum(counts)),
                         run_id=REFERENCE_RUN_ID, computed_at=created)  # fmt: skip

    sketches: list[SketchRow] = []
    features = [(f, f.name) for f in profile.features]
    if profile.prediction is not None:
        features.append((profile.prediction, "__prediction__"))
    for f, name in features:
        if f.kind == "numeric":
            sketches.append(row(f, name, "hist", "", f.edges, [], f.counts))
            sketches.append(row(f, name, "hist", "psi", f.psi_edges, [], f.psi_counts))
        else:
            labels = [*f.categories, OTHER_LABEL]
            sketches.append(
                row(f, name, "categories", "", [], labels, [*f.category_counts, f.other_count])
            )
    return ref, sketches


def store_reference(sink: Sink, profile: Profile, *, source: str = "") -> None:
    """Write a profile to ``references`` and its histograms to ``sketches``, and flush."""
    ref, sketches = reference_rows(profile, source=source)
    sink.write([ref, *sketches])
    sink.flush()
