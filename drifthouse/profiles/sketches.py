"""Each model's :class:`~drifthouse.detectors.model_sketch.ModelSketch`, laid out from its
reference profile and the configuration: a profile file, an automatic reference built from the
model's first span of traffic (:mod:`drifthouse.profiles.auto`), or none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from drifthouse.config import MetricsConfig, ModelConfig, auto_span_of, format_duration
from drifthouse.detectors.model_sketch import ModelSketch
from drifthouse.detectors.reference import Profile
from drifthouse.logs import get_logger

__all__ = ["AutoReference", "Sketches"]

log = get_logger("sketches")


@dataclass(frozen=True)
class AutoReference:
    """A model's automatic reference and its span ``[start, end)`` (event time, ms);
    ``profile`` is ``None`` when the span held no event to profile."""

    model: str
    start: int
    end: int
    profile: Profile | None


class Sketches:
    """Each model's :class:`ModelSketch`, built on first use from its profile and settings."""

    def __init__(
        self,
        profiles: Mapping[str, Profile],
        metrics: MetricsConfig,
        models: Mapping[str, ModelConfig] | None = None,
    ) -> None:
        self.profiles = dict(profiles)
        self.metrics = metrics
        self.models = dict(models or {})
        self._built: dict[str, ModelSketch] = {}
        self._no_reference: set[str] = set()
        #: The automatic references built (by the merge stage), by model, with their spans.
        self.auto_references: dict[str, AutoReference] = {}
        self._announced: set[str] = set()
        #: Called with ``(model, span_ms, listed)`` when a model on an automatic reference is
        #: first seen (the CLI prints a line).
        self.announce: list[Callable[[str, int, bool], None]] = []

    def auto_span(self, model: str) -> int | None:
        """The span of ``model``'s automatic reference (``None``: it has a profile file, or
        none at all)."""
        if not model or model in self._no_reference:
            return None
        return auto_span_of(self.models.get(model) or ModelConfig(), self.metrics)

    def __call__(self, model: str) -> ModelSketch:
        sketch = self._built.get(model)
        if sketch is None:
            profile = self.profiles.get(model)
            span = None if profile is not None else self.auto_span(model)
            if profile is None and model:
                if span is not None:
                    self.on_auto(model, span)
                else:
                    log.warning(
                        "model.no_reference", model=model, hint="drifthouse profile builds one"
                    )
            sketch = ModelSketch(model, profile, self.metrics, self.models.get(model), span)
            self._built[model] = sketch
        return sketch

    def on_auto(self, model: str, span: int) -> None:
        """A model first seen on an automatic reference (logged once per model)."""
        if model in self._announced:
            return
        self._announced.add(model)
        listed = model in self.models
        if listed:
            log.info("model.auto_reference", model=model, span=format_duration(span))
        else:
            # Unlisted: perhaps a misspelled name under `models:`. Say so once, loudly.
            log.warning(
                "model.auto_reference",
                model=model,
                span=format_duration(span),
                hint="not under models: in the config; it is monitored against a reference "
                "built from its first span of traffic (`drifthouse profile` builds one from a file)",
            )
        for callback in self.announce:
            callback(model, span, listed)

    def set_reference(self, model: str, profile: Profile | None) -> None:
        """The automatic reference of ``model`` is built (``None``: it could not be, so the
        model keeps its serving metrics only). Its sketch is laid out anew; states kept by the
        old one are resolved on their next update or merge."""
        if profile is None:
            self._no_reference.add(model)
            self.profiles.pop(model, None)
        else:
            self.profiles[model] = profile
        self._built.pop(model, None)
