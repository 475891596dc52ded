"""Honest evaluation: full ranking over the whole catalogue, in batches, with uncertainty.

``evaluate`` ranks the way the service does: through ``Recommender.recommend_batch``, the same
scores, filters, retrieval and interest merge that make the list a user receives (a bare scorer
is wrapped in a Recommender with the default ranking settings), with the items each user
already has in their history removed. It then computes per-user metrics, their means and 95 %
bootstrap intervals. Two protocols the service never serves rank the scorer's full score
matrix instead, and say so in the result: ``exclude_history=False`` (RecBole's choice for
sequential models; it moves NDCG@10 more than most gaps between models) and sampled negatives.
``compare`` runs a paired test of two results over the users they share.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from facetrec.errors import DataError
from facetrec.evaluation import metrics as m
from facetrec.evaluation.evalset import EvalSet
from facetrec.scoring.base import Scorer
from facetrec.types import Interactions, ItemCatalog

if TYPE_CHECKING:
    from facetrec.ranking import RankConfig
    from facetrec.recommender import Recommender


def _needs(value: Any, metric: str, what: str) -> Any:
    if value is None:
        raise DataError(f"metric {metric!r} needs {what}")
    return value


Metric = Callable[[np.ndarray, int, dict[str, Any]], Any]
METRICS: dict[str, Metric] = {
    "hr": lambda r, k, c: m.hit_rate(r, k, c["relevant"]),
    "recall": lambda r, k, c: m.recall(r, k, c["relevant"]),
    "precision": lambda r, k, c: m.precision(r, k, c["relevant"]),
    "f1": lambda r, k, c: m.f1(r, k, c["relevant"]),
    "ndcg": lambda r, k, c: m.ndcg(r, k, c["relevant"]),
    "mrr": lambda r, k, c: m.mrr(r, k, c["relevant"]),
    "map": lambda r, k, c: m.average_precision(r, k, c["relevant"]),
    "coverage": lambda r, k, c: m.catalogue_coverage(r, k, c["n_items"]),
    "ild": lambda r, k, c: m.intra_list_diversity(r, k, _needs(c["items"].vectors, "ild", "item vectors")),
    "category_ild": lambda r, k, c: m.category_diversity(
        r, k, _needs(c["items"].categories, "category_ild", "item categories")
    ),
    "category_coverage": lambda r, k, c: m.category_coverage(
        r, k, _needs(c["items"].categories, "category_coverage", "item categories")
    ),
    "calibration_kl": lambda r, k, c: m.calibration_kl(
        r, k, _needs(c["items"].categories, "calibration_kl", "item categories"), c["history"]
    ),
    "novelty": lambda r, k, c: m.novelty(
        r, k, _needs(c["items"].popularity, "novelty", "item popularity"), c["items"].n_train_users
    ),
    "popularity": lambda r, k, c: m.popularity_percentile(
        r, k, _needs(c["items"].popularity, "popularity", "item popularity")
    ),
    "arp": lambda r, k, c: m.average_popularity(r, k, _needs(c["items"].popularity, "arp", "item popularity")),
    "long_tail_share": lambda r, k, c: m.long_tail_share(
        r, k, _needs(c["items"].popularity, "long_tail_share", "item popularity")
    ),
    "exposure_gini": lambda r, k, c: m.exposure_gini(r, k, c["n_items"]),
    "interest_coverage": lambda r, k, c: m.interest_coverage(
        r,
        k,
        _needs(c["items"].categories, "interest_coverage", "item topics"),
        _needs(c["interests"], "interest_coverage", "user interests"),
    ),
}


def parse_metric(name: str) -> tuple[str, int]:
    base, sep, k = name.partition("@")
    if base not in METRICS or not sep or not k.isdigit() or int(k) < 1:
        raise DataError(f"unknown metric {name!r}; use name@k with a name from {', '.join(sorted(METRICS))}")
    return base, int(k)


@dataclass(frozen=True)
class EvalConfig:
    """How to rank and summarise."""

    metrics: tuple[str, ...] = ("hr@10", "ndcg@10", "mrr@10", "recall@10")
    """Metric names, ``name@k``; see :data:`METRICS` for the names."""
    exclude_history: bool = True
    """Never rank an item the user already has in their history (RecBole does not, for
    sequential models: state which one a comparison uses)."""
    sampled_negatives: int | None = None
    """Rank each user's targets among this many random items instead of the whole catalogue.
    Results are labelled as sampled: they are not comparable to full ranking."""
    batch_size: int = 1024
    """Users scored per block (memory is batch_size x n_items floats)."""
    bootstrap: int = 1000
    """Bootstrap resamples for the 95 % confidence intervals (0: none)."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in self.metrics:
            parse_metric(name)
        if self.batch_size < 1 or self.bootstrap < 0:
            raise DataError("EvalConfig: batch_size must be >= 1 and bootstrap >= 0")
        if self.sampled_negatives is not None and self.sampled_negatives < 1:
            raise DataError("EvalConfig.sampled_negatives must be >= 1 or None")

    @property
    def max_k(self) -> int:
        return max(parse_metric(name)[1] for name in self.metrics)


@dataclass(frozen=True)
class ItemSide:
    """Item facts that beyond-accuracy metrics need; each is optional."""

    vectors: np.ndarray | None = None
    """[n_items, d] embeddings, for intra-list diversity."""
    categories: Any = None
    """int [n_items] or multi-hot [n_items, n_categories], for category metrics and calibration."""
    popularity: np.ndarray | None = None
    """Distinct training users per item, for novelty and popularity bias."""
    n_train_users: int = 0

    @classmethod
    def from_data(cls, catalog: ItemCatalog, train: Interactions) -> ItemSide:
        """Categories from the catalogue (multi-hot), popularity = distinct training users per item."""
        names = sorted({c for cats in catalog.categories for c in cats})
        categories = None
        if names:
            lookup = {c: i for i, c in enumerate(names)}
            rows = np.repeat(np.arange(len(catalog)), [len(c) for c in catalog.categories])
            cols = np.fromiter((lookup[c] for cats in catalog.categories for c in cats), dtype=np.int64)
            categories = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(catalog), len(names)))
        return cls(categories=categories, popularity=train.users_per_item(), n_train_users=train.n_users)


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Per-user metrics and their summary for one model on one evaluation set."""

    model: str
    users: np.ndarray
    """Evaluated user indices (into the evaluation set's user vocabulary)."""
    per_user: dict[str, np.ndarray]
    summary: dict[str, float]
    """Mean over users with a defined value (NaN rows are skipped and counted in ``settings``)."""
    ci: dict[str, tuple[float, float]]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    ranked: np.ndarray | None = None
    """The ranked lists [len(users), max k] the metrics read (-1: an empty slot), for breakdowns
    by item group."""


@dataclass(frozen=True)
class PairedTest:
    metric: str
    mean_difference: float
    """Mean of (a - b) over shared users."""
    ci: tuple[float, float]
    p_value: float
    """Two-sided paired t-test."""
    n_users: int


def rank(
    model: Scorer | Recommender,
    evalset: EvalSet,
    k: int,
    config: EvalConfig = EvalConfig(),
    ranking: RankConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` item indices [n_users, k] for every user with a target, best first.

    Returns (users, ranked); a user with fewer than ``k`` rankable items gets -1 in the empty
    slots. With the default protocol the lists are ``Recommender.recommend_batch``'s (module
    docstring): ``model`` is a Recommender, or a scorer wrapped in one with ``ranking``.
    """
    users = np.unique(evalset.targets.user_idx)
    n_items = evalset.history.n_items
    if k > n_items:
        raise DataError(f"k={k} exceeds the catalogue of {n_items} items")
    if config.exclude_history and config.sampled_negatives is None:
        recommender = _as_recommender(model, evalset, ranking)
        ranked = np.full((len(users), k), -1, dtype=np.int64)
        for start in range(0, len(users), config.batch_size):
            block = users[start : start + config.batch_size]
            for row, found in enumerate(recommender.recommend_batch(evalset.history, block, k)):
                ranked[start + row, : len(found)] = found.idx
        return users, ranked
    scorer = model if isinstance(model, Scorer) else model.scorer
    history = evalset.history.matrix("ones").tocsr()
    targets = evalset.targets.matrix("ones").tocsr()
    rng = np.random.default_rng(config.seed)
    ranked = np.empty((len(users), k), dtype=np.int64)
    for start in range(0, len(users), config.batch_size):
        block = users[start : start + config.batch_size]
        scores = scorer.score(evalset.history, block).astype(np.float64, copy=False)
        if config.exclude_history:
            seen = history[block].tocoo()
            scores[seen.row, seen.col] = -np.inf
        if config.sampled_negatives is not None:
            allowed = np.zeros(scores.shape, dtype=bool)
            rows = np.repeat(np.arange(len(block)), config.sampled_negatives)
            allowed[rows, rng.integers(0, n_items, rows.size)] = True
            wanted = targets[block].tocoo()
            allowed[wanted.row, wanted.col] = True
            scores[~allowed] = -np.inf
        ranked[start : start + len(block)] = _top_k(scores, k)
    return users, ranked


def _as_recommender(model: Scorer | Recommender, evalset: EvalSet, ranking: RankConfig | None) -> Recommender:
    from facetrec.recommender import Recommender

    if isinstance(model, Recommender):
        if ranking is not None:
            raise DataError("evaluate: a Recommender brings its own ranking settings; pass ranking only with a scorer")
        return model
    return Recommender(model, ItemCatalog(evalset.history.items), evalset.history, ranking)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores per row, best first; -inf entries become -1 (ties: lowest index)."""
    part = (
        np.argpartition(-scores, k - 1, axis=1)[:, :k]
        if k < scores.shape[1]
        else np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    )
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    top = np.take_along_axis(part, order, axis=1)
    top[np.take_along_axis(part_scores, order, axis=1) == -np.inf] = -1
    return top


def evaluate(
    model: Scorer | Recommender,
    evalset: EvalSet,
    config: EvalConfig = EvalConfig(),
    items: ItemSide = ItemSide(),
    *,
    name: str | None = None,
    user_interests: Any = None,
    ranking: RankConfig | None = None,
) -> EvalResult:
    """Rank (as :func:`rank`), then compute every configured metric per user; ``user_interests``
    (users x topics, rows aligned with the evaluation set's user vocabulary) enables
    ``interest_coverage``; ``ranking`` sets the ranking of a bare scorer (default RankConfig())."""
    if len(evalset.targets) == 0:
        raise DataError("evaluate: the evaluation set has no targets")
    start = time.perf_counter()
    users, ranked = rank(model, evalset, config.max_k, config, ranking)
    scorer = model if isinstance(model, Scorer) else model.scorer
    relevant = evalset.targets.matrix("ones").tocsr()[users]
    context = {
        "relevant": relevant,
        "items": items,
        "history": evalset.history.matrix("weight").tocsr()[users],
        "interests": None if user_interests is None else sp.csr_matrix(user_interests)[users],
        "n_items": evalset.history.n_items,
    }
    per_user, summary, ci = {}, {}, {}
    rng = np.random.default_rng(config.seed)
    for metric in config.metrics:
        base, k = parse_metric(metric)
        value = METRICS[base](ranked, k, context)
        if np.ndim(value) == 0:
            summary[metric] = float(value)
            continue
        per_user[metric] = value
        summary[metric] = float(np.nanmean(value)) if np.isfinite(value).any() else float("nan")
        if config.bootstrap:
            ci[metric] = bootstrap_ci(value, config.bootstrap, rng)
    history_items = evalset.history.matrix("ones").tocsr()[users]
    repeats = int(relevant.multiply(history_items).count_nonzero())
    served = config.exclude_history and not config.sampled_negatives
    settings = {
        "exclude_history": config.exclude_history,
        "ranked_by": "Recommender.recommend_batch (the served path)" if served else "the scorer's full score matrix",
        "ranking": f"sampled-{config.sampled_negatives} (NOT comparable to full ranking)"
        if config.sampled_negatives
        else "full",
        "users": len(users),
        "targets": int(relevant.count_nonzero()),
        "targets_already_in_history": repeats,
    }
    seconds = time.perf_counter() - start
    return EvalResult(name or type(scorer).__name__, users, per_user, summary, ci, settings, seconds, ranked)


def bootstrap_ci(values: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[float, float]:
    """95 % percentile interval of the mean over users (NaN users dropped first)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    low, high = np.percentile(bootstrap_means(values, resamples, rng), [2.5, 97.5])
    return (float(low), float(high))


def bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` draws of ``values`` with replacement (non-empty, finite values)."""
    means = np.empty(resamples)
    chunk = max(1, 10_000_000 // values.size)  # bound memory at ~80 MB per chunk
    for begin in range(0, resamples, chunk):
        n = min(chunk, resamples - begin)
        means[begin : begin + n] = values[rng.integers(0, values.size, (n, values.size))].mean(axis=1)
    return means


def compare(a: EvalResult, b: EvalResult, metric: str, resamples: int = 1000, seed: int = 0) -> PairedTest:
    """Paired comparison of two models on the users both evaluated (t-test and bootstrap CI)."""
    from scipy.stats import ttest_rel

    if metric not in a.per_user or metric not in b.per_user:
        raise DataError(f"compare: {metric!r} is not a per-user metric of both results")
    _, ia, ib = np.intersect1d(a.users, b.users, return_indices=True)
    x, y = a.per_user[metric][ia], b.per_user[metric][ib]
    keep = np.isfinite(x) & np.isfinite(y)
    diff = x[keep] - y[keep]
    if diff.size < 2:
        raise DataError(f"compare: fewer than 2 shared users with a defined {metric}")
    p = 1.0 if np.allclose(diff, 0) else float(ttest_rel(x[keep], y[keep]).pvalue)
    return PairedTest(
        metric, float(diff.mean()), bootstrap_ci(diff, resamples, np.random.default_rng(seed)), p, int(diff.size)
    )


def evaluate_ratings(scorer: Scorer, evalset: EvalSet) -> dict[str, float]:
    """RMSE and MAE of predicted ratings on the rated targets (scorers that predict ratings)."""
    if "ratings" not in scorer.capabilities.can:
        raise DataError(f"{type(scorer).__name__} does not predict ratings; use a rating model such as 'bias'")
    rated = evalset.targets.take(~np.isnan(evalset.targets.rating))
    if len(rated) == 0:
        raise DataError("evaluate_ratings: no target has a rating")
    users, position = np.unique(rated.user_idx, return_inverse=True)
    predicted = scorer.score(evalset.history, users)[position, rated.item_idx]
    return {"rmse": m.rmse(predicted, rated.rating), "mae": m.mae(predicted, rated.rating), "ratings": len(rated)}


def evaluate_clicks(
    scorer: Scorer, evalset: EvalSet, positive: Sequence[int], negative: Sequence[int]
) -> dict[str, float]:
    """Click prediction on impression logs: AUC of scores for ``positive`` events (e.g. clicks)
    against ``negative`` ones (e.g. shown but not clicked), over all target events, and the
    mean per-user AUC (GAUC) over users who have both kinds."""
    targets = evalset.targets
    labels = np.isin(targets.event, positive)
    shown = labels | np.isin(targets.event, negative)
    if not (labels.any() and (shown & ~labels).any()):
        raise DataError("evaluate_clicks: the targets need both positive and negative events")
    targets, labels = targets.take(shown), labels[shown]
    users, position = np.unique(targets.user_idx, return_inverse=True)
    scores = scorer.score(evalset.history, users)[position, targets.item_idx].astype(np.float64)
    # Per-user AUC by the rank-sum (Mann-Whitney) formula, ranks averaged over ties within a user.
    ranks = pd.Series(scores).groupby(position).rank().to_numpy()
    n_pos = np.bincount(position, labels)
    n_neg = np.bincount(position) - n_pos
    rank_sum = np.bincount(position, ranks * labels)
    both = (n_pos > 0) & (n_neg > 0)
    per_user = (rank_sum[both] - n_pos[both] * (n_pos[both] + 1) / 2) / (n_pos[both] * n_neg[both])
    return {
        "auc": m.auc(scores, labels),
        "gauc": float(per_user.mean()) if per_user.size else float("nan"),
        "impressions": len(labels),
    }


def cold_targets(evalset: EvalSet, train_item_counts: np.ndarray, cold: bool = True) -> EvalSet:
    """The evaluation set restricted to targets on items never (``cold``) or ever seen in training."""
    is_cold = train_item_counts[evalset.targets.item_idx] == 0
    return EvalSet(evalset.history, evalset.targets.take(is_cold if cold else ~is_cold))


def metric_names(ks: Sequence[int], names: Sequence[str]) -> tuple[str, ...]:
    """All combinations ``name@k``, e.g. metric_names([10, 20], ["ndcg", "hr"])."""
    return tuple(f"{n}@{k}" for n in names for k in ks)
