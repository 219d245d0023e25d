"""Which features of a model are numeric, categorical and embeddings, and their category codes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["FeatureLayout"]


@dataclass(frozen=True)
class FeatureLayout:
    """Which features of a model are numeric and categorical, and the category codes.

    ``categories[j]`` maps the canonical value of categorical feature ``j`` to its code; any
    value the reference never had gets ``unseen[j]`` (counted in the "other" bucket and as a
    new category).
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    categories: tuple[Mapping[str, int], ...]
    unseen: tuple[int, ...]
    prediction_categories: Mapping[str, int] | None = None
    prediction_unseen: int = 0
    #: The classes of a multiclass model's ``{class: probability}`` predictions, when its
    #: profile has a calibration for them (performance estimation; sorted category keys).
    probability_classes: tuple[str, ...] = ()
    #: Embedding features (arrays of numbers) with their dimensions (docs/statistics.md,
    #: "Embedding features").
    embeddings: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if len(self.categories) != len(self.categorical) or len(self.unseen) != len(
            self.categorical
        ):
            raise ValueError("categories and unseen need one entry per categorical feature")
        # The codes with a missing value (None) as -1, for a lookup in one C-level pass.
        object.__setattr__(
            self, "_with_missing", tuple({**cmap, None: -1} for cmap in self.categories)
        )

    @property
    def embedding(self) -> tuple[str, ...]:
        """The embedding features' names."""
        return tuple(name for name, _ in self.embeddings)

    @property
    def embedding_dims(self) -> tuple[int, ...]:
        """The embedding features' dimensions."""
        return tuple(dim for _, dim in self.embeddings)

    def codes_with_missing(self, j: int) -> Mapping[str | None, int]:
        """The codes of categorical feature ``j``, with ``None`` (missing) as ``-1``."""
        found: tuple[Mapping[str | None, int], ...] = self.__dict__["_with_missing"]
        return found[j]
