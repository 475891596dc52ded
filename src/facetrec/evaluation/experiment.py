"""Side-by-side experiments: several models, one split, one run, one set of metrics.

Comparisons are only meaningful on the identical split and protocol, so this module owns
both: it splits once, optionally tunes each model's hyper-parameters on the validation
targets (never on test), fits, and evaluates every model on the same test set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from facetrec.data.dataset import Dataset
from facetrec.data.filters import first_occurrences
from facetrec.data.split import Split, make_split
from facetrec.evaluation.protocol import (
    EvalConfig,
    EvalResult,
    ItemSide,
    cold_targets,
    evaluate,
    evaluate_clicks,
    evaluate_ratings,
)
from facetrec.scoring.base import Scorer
from facetrec.scoring.registry import SEARCH_SPACES, make_scorer
from facetrec.types import Event

CLICK_EVENTS = (Event.CLICK, Event.CART, Event.PURCHASE)
"""Events that count as a positive response to an item shown (a view is the negative)."""


@dataclass(frozen=True, eq=False)
class ModelRun:
    kind: str
    params: dict[str, Any]
    """The configuration that was used (after tuning)."""
    test: EvalResult
    fit_seconds: float
    tuning: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    """(params, validation score) for each tried setting, when tuned."""
    cold: EvalResult | None = None
    """Accuracy on the test targets whose items never occur in training (None: there are none)."""
    warm: EvalResult | None = None
    """Accuracy on the other test targets, for comparison with ``cold``."""
    other: dict[str, float] = field(default_factory=dict)
    """Rating prediction (rmse, mae) for rating models, click prediction (auc, gauc) where the
    test targets mix clicks with shown-but-not-clicked views."""


@dataclass(frozen=True, eq=False)
class Experiment:
    dataset: str
    split: Split
    config: EvalConfig
    runs: list[ModelRun]
    seed: int
    first_only: bool = False
    """Whether only each user's first event per item was kept before splitting."""

    def result(self, kind: str) -> EvalResult:
        return next(r.test for r in self.runs if r.kind == kind)


def default_metrics(has_categories: bool, has_interests: bool, ks: tuple[int, ...] = (10,)) -> tuple[str, ...]:
    """Accuracy metrics, plus beyond-accuracy ones that the available item facts allow."""
    names = ["hr", "ndcg", "mrr", "recall", "coverage", "novelty", "popularity"]
    if has_categories:
        names += ["category_ild", "category_coverage", "calibration_kl"]
    if has_interests:
        names.append("interest_coverage")
    return tuple(f"{n}@{k}" for k in ks for n in names)


def run_experiment(
    dataset: Dataset,
    kinds: list[str],
    *,
    protocol: str = "loo",
    config: EvalConfig | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    tune: bool = False,
    tune_metric: str = "ndcg@10",
    seed: int = 0,
    first_only: bool = False,
    click_auc: bool = False,
    interests: tuple[np.ndarray, sp.csr_matrix] | None = None,
    on_event: Callable[[str], None] = lambda message: None,
) -> Experiment:
    """Fit and evaluate each model kind on one split of ``dataset``.

    ``interests`` = (item topic per item, users x topics ground truth) enables interest
    coverage (synthetic data); otherwise categories come from the catalogue. ``first_only``
    keeps each user's first event per item (see :func:`facetrec.data.filters.first_occurrences`).
    ``click_auc`` reads view events as shown-but-not-clicked impressions (as in MIND) and adds
    click-prediction AUC; leave it off where a view is itself engagement.
    """
    data = first_occurrences(dataset.interactions) if first_only else dataset.interactions
    split = make_split(data, protocol, seed)
    items = ItemSide.from_data(dataset.catalog, split.train)
    if interests is not None:
        items = ItemSide(categories=interests[0], popularity=items.popularity, n_train_users=items.n_train_users)
    config = config or EvalConfig(
        metrics=default_metrics(items.categories is not None, interests is not None), seed=seed
    )
    user_interests = None if interests is None else interests[1]
    runs = []
    for kind in kinds:
        chosen = dict((params or {}).get(kind, {}))
        tuning: list[tuple[dict[str, Any], float]] = []
        if tune:
            valid_config = EvalConfig(metrics=(tune_metric,), bootstrap=0, seed=seed)
            for candidate in SEARCH_SPACES.get(kind, [{}]):
                trial = {**candidate, **chosen}
                scorer = make_scorer(kind, trial, seed).fit(split.train, dataset.catalog, split.valid)
                score = evaluate(scorer, split.valid, valid_config).summary[tune_metric]
                tuning.append((trial, score))
                on_event(f"{kind} {trial}: validation {tune_metric} = {score:.4f}")
            chosen = max(tuning, key=lambda pair: pair[1])[0]
        start = time.perf_counter()
        scorer = make_scorer(kind, chosen, seed).fit(split.train, dataset.catalog, split.valid)
        fit_seconds = time.perf_counter() - start
        result = evaluate(scorer, split.test, config, items, name=kind, user_interests=user_interests)
        cold, warm = _cold_and_warm(scorer, split, config, kind)
        other = _other_protocols(scorer, split, click_auc)
        on_event(
            f"{kind}: fitted in {fit_seconds:.1f} s, test "
            + ", ".join(f"{name} = {value:.4f}" for name, value in list(result.summary.items())[:3])
        )
        runs.append(ModelRun(kind, chosen, result, fit_seconds, tuning, cold, warm, other))
    return Experiment(dataset.name, split, config, runs, seed, first_only)


def _cold_and_warm(
    scorer: Scorer, split: Split, config: EvalConfig, kind: str
) -> tuple[EvalResult | None, EvalResult | None]:
    """Accuracy separately on targets whose items are new at test time and on the others."""
    counts = np.bincount(split.train.item_idx, minlength=split.train.n_items)
    cold_set = cold_targets(split.test, counts)
    if len(cold_set.targets) == 0:
        return None, None
    accuracy = tuple(m for m in config.metrics if m.split("@")[0] in ("hr", "ndcg", "recall", "mrr"))
    subset = replace(config, metrics=accuracy or ("recall@10",))
    return (
        evaluate(scorer, cold_set, subset, name=f"{kind} (cold items)"),
        evaluate(scorer, cold_targets(split.test, counts, cold=False), subset, name=f"{kind} (warm items)"),
    )


def _other_protocols(scorer: Scorer, split: Split, click_auc: bool) -> dict[str, float]:
    """Rating and click prediction, where the scorer and the test targets allow them."""
    out: dict[str, float] = {}
    targets = split.test.targets
    if getattr(scorer, "predicts_ratings", False) and (~np.isnan(targets.rating)).any():
        out.update(evaluate_ratings(scorer, split.test))
    clicks, views = np.isin(targets.event, CLICK_EVENTS), targets.event == Event.VIEW
    if click_auc and clicks.any() and views.any():
        out.update(evaluate_clicks(scorer, split.test, CLICK_EVENTS, [Event.VIEW]))
    return out
