"""Descriptive statistics of a dataset: what a person checks before trusting it.

The numbers are computed here as plain dataclasses; rendering (rich tables) is the CLI's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facetrec.data.dataset import Dataset
from facetrec.types import Event

_QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)


@dataclass(frozen=True)
class Distribution:
    """Summary of a count distribution (events per user or per item)."""

    mean: float
    quantiles: dict[str, float]
    """Keys: min, p25, median, p75, p90, max."""

    @classmethod
    def of(cls, counts: np.ndarray) -> Distribution:
        values = np.quantile(counts, _QUANTILES) if counts.size else np.zeros(len(_QUANTILES))
        names = ("min", "p25", "median", "p75", "p90", "max")
        return cls(float(counts.mean()) if counts.size else 0.0, dict(zip(names, map(float, values), strict=True)))


@dataclass(frozen=True)
class VectorStats:
    """One set of precomputed item vectors: its width and how many items it covers."""

    dim: int
    coverage: float
    """Share of items with a vector (a non-zero row; zero rows mean missing)."""


@dataclass(frozen=True)
class DatasetStats:
    name: str
    interactions: int
    users: int
    items: int
    density: float
    """Share of user-item pairs with at least one event."""
    first_time: int
    last_time: int
    events: dict[str, int]
    ratings: dict[str, int]
    """Rating value -> count (empty when the data has none)."""
    user_lengths: Distribution
    item_popularity: Distribution
    top10_share: float
    """Share of events on the 10 % most popular items (long tail when high)."""
    gini: float
    """Gini coefficient of item popularity: 0 uniform, 1 all events on one item."""
    cold_items: int
    """Catalogue items with no interaction."""
    coverage: dict[str, float]
    """Field -> share of items (or, for reviews, of events) that have it."""
    vectors: dict[str, VectorStats] = field(default_factory=dict)
    """Name -> the catalogue's precomputed item vectors of that name (image, audio, ...)."""


def describe(dataset: Dataset) -> DatasetStats:
    """Compute :class:`DatasetStats` in a few vectorised passes."""
    data, catalog = dataset.interactions, dataset.catalog
    user_counts = np.bincount(data.user_idx, minlength=data.n_users)
    item_counts = np.bincount(data.item_idx, minlength=data.n_items)
    pairs = len(np.unique(data.user_idx.astype(np.int64) * data.n_items + data.item_idx))
    events = np.bincount(data.event, minlength=len(Event))
    rated = data.rating[~np.isnan(data.rating)]
    values, counts = np.unique(rated, return_counts=True)
    ordered = np.sort(item_counts)
    top = ordered[::-1][: max(1, len(ordered) // 10)].sum()
    coverage = {name: float(np.mean([bool(s) for s in values_])) for name, values_ in catalog.text.items()}
    coverage["categories"] = float(np.mean([len(t) > 0 for t in catalog.categories]))
    coverage["tags"] = float(np.mean([len(t) > 0 for t in catalog.tags]))
    coverage["image"] = float(np.mean([v is not None for v in catalog.image]))
    coverage["audio"] = float(np.mean([v is not None for v in catalog.audio]))
    coverage["created_at"] = float(np.mean(~np.isnan(catalog.created_at)))
    if data.review is not None:
        coverage["review (events)"] = float(np.mean([bool(r) for r in data.review]))
    return DatasetStats(
        name=dataset.name,
        interactions=len(data),
        users=data.n_users,
        items=data.n_items,
        density=pairs / max(1, data.n_users * data.n_items),
        first_time=int(data.timestamp.min()) if len(data) else 0,
        last_time=int(data.timestamp.max()) if len(data) else 0,
        events={e.name.lower(): int(events[e]) for e in Event if events[e]},
        ratings={f"{v:g}": int(c) for v, c in zip(values, counts, strict=True)},
        user_lengths=Distribution.of(user_counts),
        item_popularity=Distribution.of(item_counts),
        top10_share=float(top / max(1, ordered.sum())),
        gini=_gini(ordered),
        cold_items=int((item_counts == 0).sum()),
        coverage=coverage,
        vectors={
            name: VectorStats(matrix.shape[1], float(matrix.any(axis=1).mean()) if len(matrix) else 0.0)
            for name, matrix in catalog.vectors.items()
        },
    )


def _gini(sorted_counts: np.ndarray) -> float:
    n = len(sorted_counts)
    total = sorted_counts.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * sorted_counts).sum()) / (n * total) - (n + 1) / n)
