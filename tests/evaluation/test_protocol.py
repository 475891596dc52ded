"""The evaluation harness: ranking, exclusion, sampled mode, intervals, paired tests, cold targets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from facetrec.data.split import leave_one_out
from facetrec.errors import DataError
from facetrec.evaluation.evalset import EvalSet
from facetrec.evaluation.protocol import (
    EvalConfig,
    ItemSide,
    bootstrap_ci,
    cold_targets,
    compare,
    evaluate,
    metric_names,
    rank,
)
from facetrec.ids import Vocabulary
from facetrec.scoring.base import Scorer
from facetrec.scoring.popularity import PopularityScorer
from facetrec.testing import small_synthetic
from facetrec.types import Interactions

USERS = Vocabulary(["u0", "u1", "u2"], "user")
ITEMS = Vocabulary([f"i{i}" for i in range(6)], "item")


@dataclass(frozen=True)
class FixedConfig:
    pass


class FixedScorer(Scorer[FixedConfig]):
    """Scores item i with 10 - i for every user: the ranking is 0, 1, 2, ... unless excluded."""

    config_class = FixedConfig

    def fit(self, train, catalog=None, valid=None):
        self.n_items_ = train.n_items
        return self

    def _score(self, history, users):
        return np.tile(10.0 - np.arange(self.n_items_), (len(users), 1))


def log(users, items, times=None):
    times = np.arange(len(users)) if times is None else times
    return Interactions(users, items, times, USERS, ITEMS)


def test_rank_excludes_history_and_orders_best_first():
    history = log([0, 0, 1], [0, 2, 5])
    targets = log([0, 1], [3, 0])
    scorer = FixedScorer().fit(history)
    users, ranked = rank(scorer, EvalSet(history, targets), k=3)
    assert users.tolist() == [0, 1]
    assert ranked.tolist() == [[1, 3, 4], [0, 1, 2]]
    _, kept = rank(scorer, EvalSet(history, targets), k=3, config=EvalConfig(exclude_history=False))
    assert kept.tolist() == [[0, 1, 2], [0, 1, 2]]


def test_evaluate_by_hand():
    history = log([0, 0, 1], [0, 2, 5])
    targets = log([0, 1, 1], [3, 4, 5])  # user 1's target 5 is in their history: excluded, never hit
    result = evaluate(
        FixedScorer().fit(history),
        EvalSet(history, targets),
        EvalConfig(metrics=("hr@2", "ndcg@3", "recall@5", "coverage@2"), bootstrap=0),
    )
    # user 0 ranking [1, 3, 4, 5, -1]: target 3 at rank 2; user 1 ranking [0, 1, 2, 3, 4]: target 4 at rank 5
    np.testing.assert_allclose(result.per_user["hr@2"], [1, 0])
    np.testing.assert_allclose(result.per_user["ndcg@3"], [1 / np.log2(3), 0])
    np.testing.assert_allclose(result.per_user["recall@5"], [1, 0.5])
    assert result.summary["coverage@2"] == pytest.approx(3 / 6)  # items 1, 3, 0
    assert result.settings["targets_already_in_history"] == 1
    assert result.settings["exclude_history"] is True and result.settings["ranking"] == "full"


def test_sampled_mode_is_labelled_and_keeps_targets():
    data = small_synthetic().dataset.interactions
    split = leave_one_out(data)
    scorer = PopularityScorer().fit(split.train)
    full = evaluate(scorer, split.test, EvalConfig(bootstrap=0))
    sampled = evaluate(scorer, split.test, EvalConfig(sampled_negatives=10, bootstrap=0))
    assert "NOT comparable" in sampled.settings["ranking"]
    assert sampled.summary["hr@10"] > full.summary["hr@10"]  # 10 negatives: easy


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_users():
    rng = np.random.default_rng(0)
    small = rng.random(50)
    large = rng.random(5000)
    low, high = bootstrap_ci(small, 500, np.random.default_rng(1))
    assert low < small.mean() < high
    low2, high2 = bootstrap_ci(large, 500, np.random.default_rng(1))
    assert (high2 - low2) < (high - low) / 4
    assert np.isnan(bootstrap_ci(np.array([np.nan]), 10, rng)[0])


def test_compare_is_paired():
    data = small_synthetic().dataset.interactions
    split = leave_one_out(data)
    config = EvalConfig(metrics=("ndcg@10",), bootstrap=0)
    pop = evaluate(PopularityScorer().fit(split.train), split.test, config)
    fixed = evaluate(FixedScorer().fit(split.train), split.test, config, name="fixed")
    same = compare(pop, pop, "ndcg@10")
    assert same.mean_difference == 0 and same.p_value == 1.0
    test = compare(pop, fixed, "ndcg@10")
    assert test.mean_difference == pytest.approx(pop.summary["ndcg@10"] - fixed.summary["ndcg@10"])
    assert test.ci[0] <= test.mean_difference <= test.ci[1] and 0 <= test.p_value <= 1
    with pytest.raises(DataError, match="not a per-user metric"):
        compare(pop, fixed, "hr@10")


def test_cold_targets_split_warm_and_cold():
    history = log([0, 1], [0, 1])
    targets = log([0, 1, 2], [2, 0, 5])
    counts = np.bincount(history.item_idx, minlength=6)
    assert cold_targets(EvalSet(history, targets), counts).targets.item_idx.tolist() == [2, 5]
    assert cold_targets(EvalSet(history, targets), counts, cold=False).targets.item_idx.tolist() == [0]


def test_item_side_metrics_need_their_inputs():
    data = small_synthetic().dataset
    split = leave_one_out(data.interactions)
    scorer = PopularityScorer().fit(split.train)
    with pytest.raises(DataError, match="metric 'ild' needs item vectors"):
        evaluate(scorer, split.test, EvalConfig(metrics=("ild@10",), bootstrap=0))
    side = ItemSide.from_data(data.catalog, split.train)
    result = evaluate(scorer, split.test, EvalConfig(metrics=("category_coverage@10", "novelty@10"), bootstrap=0), side)
    assert 0 < result.summary["category_coverage@10"] <= 1 and result.summary["novelty@10"] > 0


def test_config_validation():
    with pytest.raises(DataError, match="unknown metric 'ndgc@10'"):
        EvalConfig(metrics=("ndgc@10",))
    with pytest.raises(DataError, match="unknown metric 'ndcg'"):
        EvalConfig(metrics=("ndcg",))
    assert metric_names([10, 20], ["ndcg", "hr"]) == ("ndcg@10", "ndcg@20", "hr@10", "hr@20")
    history = log([0], [0])
    with pytest.raises(DataError, match="k=7 exceeds the catalogue of 6 items"):
        rank(FixedScorer().fit(history), EvalSet(history, log([0], [1])), k=7)
