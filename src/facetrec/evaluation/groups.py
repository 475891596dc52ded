"""Who receives exposure and who receives accuracy: item groups and user groups of a report.

Averages hide the people and providers a recommender serves badly. Items are grouped by
category, brand (provider) and popularity bucket, and each group's share of all list slots is
set beside its share of the catalogue. Users are grouped by activity (quantiles of history
length, available everywhere) and by any attribute the dataset carries (ML-1M: gender and age
band), and each group gets its mean accuracy with a seeded percentile bootstrap interval, plus
the gap between the best and the worst group with its own interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from facetrec.errors import DataError
from facetrec.evaluation import metrics as m
from facetrec.evaluation.protocol import bootstrap_means
from facetrec.types import ItemCatalog

POPULARITY_BUCKETS = ("head", "middle", "tail")
"""Labels of :func:`facetrec.evaluation.metrics.popularity_buckets`' 0, 1 and 2."""


@dataclass(frozen=True, eq=False)
class ItemGrouping:
    """Items in named groups: ``members`` is a binary [n_items, len(labels)] matrix (an item may be
    in several groups, or in none)."""

    name: str
    labels: tuple[str, ...]
    members: sp.csr_matrix


@dataclass(frozen=True)
class GroupShare:
    group: str
    exposure: float
    """Share of all list slots given to the group's items (an item in n groups counts 1/n in each)."""
    catalogue: float
    """Share of the catalogue in the group, counted the same way: what an even exposure would give."""


@dataclass(frozen=True)
class GroupScore:
    group: str
    mean: float
    """Mean of the metric over the group's users with a defined value."""
    ci_low: float
    ci_high: float
    """95 % percentile bootstrap interval of the mean (users resampled within the group)."""
    users: int


@dataclass(frozen=True)
class GroupGap:
    """The best group's mean minus the worst group's, with a bootstrap interval (each group resampled
    on its own): an interval that excludes 0 says the gap is not resampling noise."""

    best: str
    worst: str
    gap: float
    ci_low: float
    ci_high: float


def item_groupings(catalog: ItemCatalog, popularity: np.ndarray) -> list[ItemGrouping]:
    """Category (when items have any), brand (when the catalogue names any) and popularity bucket."""
    out = []
    category = _from_lists("category", catalog.categories)
    if category.labels:
        out.append(category)
    brand = catalog.text.get("brand")
    if brand is not None and any(brand):
        out.append(_from_lists("brand", [(b,) if b else () for b in brand]))
    bucket = m.popularity_buckets(popularity)
    members = sp.csr_matrix((np.ones(bucket.size), (np.arange(bucket.size), bucket)), shape=(bucket.size, 3))
    out.append(ItemGrouping("popularity", POPULARITY_BUCKETS, members))
    return out


def _from_lists(name: str, values: object) -> ItemGrouping:
    lists = list(values)  # type: ignore[call-overload]
    labels = sorted({g for groups in lists for g in groups})
    lookup = {g: i for i, g in enumerate(labels)}
    rows = np.repeat(np.arange(len(lists)), [len(groups) for groups in lists])
    cols = np.fromiter((lookup[g] for groups in lists for g in groups), dtype=np.int64, count=rows.size)
    members = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(len(lists), len(labels)))
    members.data[:] = 1.0  # an item naming a group twice is in it once
    return ItemGrouping(name, tuple(labels), members)


def exposure_by_group(ranked: np.ndarray, k: int, grouping: ItemGrouping) -> list[GroupShare]:
    """Each group's share of exposure in the first ``k`` slots of every list, beside its catalogue share;
    groups ordered by catalogue share, largest first."""
    given = m.exposure_share(ranked, k, grouping.members)
    counts = np.diff(grouping.members.indptr)
    split = sp.diags(1.0 / np.maximum(counts, 1)) @ grouping.members
    catalogue = np.asarray(split.sum(axis=0)).ravel() / grouping.members.shape[0]
    order = np.lexsort((np.arange(len(grouping.labels)), -catalogue))
    return [GroupShare(grouping.labels[g], float(given[g]), float(catalogue[g])) for g in order]


def activity_groups(history_length: np.ndarray, quantiles: int = 4) -> np.ndarray:
    """Each user's activity label, e.g. ``history 5-12 events``: users split at the ``quantiles``
    quantiles of history length (rounded; equal edges merge, so there may be fewer groups)."""
    length = np.asarray(history_length)
    if quantiles < 1:
        raise DataError(f"quantiles: must be >= 1, got {quantiles}")
    if length.size == 0:
        return np.array([], dtype=object)
    edges = np.unique(np.quantile(length, np.linspace(0, 1, quantiles + 1)).round()).astype(np.int64)
    if edges.size == 1:
        return np.full(length.size, f"history {edges[0]} events", dtype=object)
    group = np.clip(np.searchsorted(edges, length, side="right") - 1, 0, edges.size - 2)
    names = []
    for g in range(edges.size - 1):  # group g: edges[g] <= length < edges[g + 1]; the last is open
        low, high = int(edges[g]), int(edges[g + 1]) - 1
        span = f"{low}+" if g == edges.size - 2 else (f"{low}" if low == high else f"{low}-{high}")
        names.append(f"history {span} events")
    return np.array(names, dtype=object)[group]


def user_groups(
    attributes: dict[str, np.ndarray], history_length: np.ndarray, names: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Each named grouping's label per user: ``activity`` (:func:`activity_groups`) or an attribute
    (labels aligned with ``history_length``); ``names=None`` gives activity and every attribute."""
    available = ("activity", *attributes)
    chosen = available if names is None else names
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise DataError(
            f"user groups {', '.join(map(repr, unknown))} are not known for this dataset; "
            f"available: {', '.join(available)}"
        )
    return {n: activity_groups(history_length) if n == "activity" else attributes[n] for n in chosen}


def group_scores(
    values: np.ndarray, labels: np.ndarray, resamples: int = 1000, seed: int = 0
) -> tuple[list[GroupScore], GroupGap | None]:
    """Per-group mean of per-user ``values`` with 95 % percentile bootstrap intervals, and the gap
    between the best and worst group. Users with a NaN value or an empty label ("" = unknown) are
    left out; groups come in label order; ``resamples=0`` gives NaN intervals. The gap is None with
    fewer than two groups."""
    values, labels = np.asarray(values, dtype=np.float64), np.asarray(labels, dtype=object)
    if values.shape != labels.shape or values.ndim != 1:
        raise DataError(f"group_scores: values {values.shape} and labels {labels.shape} must be equal-length vectors")
    keep = np.isfinite(values) & (labels != "")
    rng = np.random.default_rng(seed)
    nan = float("nan")
    scores, draws = [], []
    for label in sorted(set(labels[keep])):
        mine = values[keep & (labels == label)]
        means = bootstrap_means(mine, resamples, rng)
        low, high = np.percentile(means, [2.5, 97.5]) if resamples else (nan, nan)
        scores.append(GroupScore(str(label), float(mine.mean()), float(low), float(high), int(mine.size)))
        draws.append(means)
    if len(scores) < 2:
        return scores, None
    best = max(range(len(scores)), key=lambda g: scores[g].mean)
    worst = min(range(len(scores)), key=lambda g: scores[g].mean)
    low, high = np.percentile(draws[best] - draws[worst], [2.5, 97.5]) if resamples else (nan, nan)
    gap = scores[best].mean - scores[worst].mean
    return scores, GroupGap(scores[best].group, scores[worst].group, gap, float(low), float(high))
