from typing import Any, ClassVar

import numpy as np
import pytest

from facetrec.errors import ConfigError
from facetrec.ids import Vocabulary
from facetrec.scoring.base import history_matrix
from facetrec.scoring.itemknn import ItemKNNScorer
from facetrec.testing import ScorerConformance
from facetrec.types import Interactions


class TestItemKNNConformance(ScorerConformance):
    component = ItemKNNScorer
    params: ClassVar[dict[str, Any]] = {"k": 20}


class TestWeightedItemKNNConformance(ScorerConformance):
    component = ItemKNNScorer
    params: ClassVar[dict[str, Any]] = {"k": 5, "shrinkage": 0.0, "feedback": "weight"}


ITEMS = Vocabulary(["a", "b", "c", "d"], "item")
A, B, C, D = range(4)
# a and b always co-occur (3 users); c meets a and b once and d once
BASKETS = [[A, B], [A, B], [A, B, C], [C, D], [D]]


def log(baskets: list[list[int]], weights: list[float] | None = None) -> Interactions:
    users = np.repeat(np.arange(len(baskets)), [len(b) for b in baskets])
    items = np.concatenate(baskets)
    vocab = Vocabulary([f"u{i}" for i in range(len(baskets))], "user")
    return Interactions(users, items, np.arange(len(items)), vocab, ITEMS, weight=weights)


def test_item_that_always_co_occurs_scores_highest():
    scorer = ItemKNNScorer(shrinkage=0.0).fit(log(BASKETS))
    scores = scorer.score(log([[A]]), np.array([0]))[0]
    np.testing.assert_allclose(scores, [0.0, 1.0, 1 / np.sqrt(6), 0.0], rtol=1e-6)  # own item: zero diagonal
    assert scores.argmax() == B


def test_shrinkage_matches_hand_computed_values_and_damps_rare_pairs():
    plain = ItemKNNScorer(shrinkage=0.0).fit(log(BASKETS)).similarity.toarray()
    shrunk = ItemKNNScorer(shrinkage=10.0).fit(log(BASKETS)).similarity.toarray()
    # dot / (|i| |j| + 10): a-b: 3 / (3 + 10); a-c: 1 / (sqrt(6) + 10); c-d: 1 / (2 + 10)
    np.testing.assert_allclose(
        [shrunk[A, B], shrunk[A, C], shrunk[C, D]], [3 / 13, 1 / (np.sqrt(6) + 10), 1 / 12], rtol=1e-6
    )
    np.testing.assert_allclose([plain[A, B], plain[C, D]], [1.0, 0.5], rtol=1e-6)
    assert shrunk[C, D] / plain[C, D] < shrunk[A, B] / plain[A, B]  # one shared user is damped harder
    np.testing.assert_array_equal(np.diag(shrunk), 0.0)
    np.testing.assert_allclose(shrunk, shrunk.T, rtol=1e-6)  # nothing pruned at k=100: symmetric


def test_keeps_k_neighbours_per_item():
    sim = ItemKNNScorer(k=1, shrinkage=0.0).fit(log(BASKETS)).similarity.toarray()
    assert ((sim > 0).sum(axis=0) <= 1).all()
    assert sim[:, C].nonzero()[0].tolist() == [D]  # c's best neighbour: d (0.5) beats a and b (0.41)


def test_history_matrix_reads_requested_users_in_order():
    data = log([[A, A, B], [C], [D, D]], weights=[1.0, 2.0, 1.0, 1.0, 0.5, 0.5])
    binary = history_matrix(data, np.array([2, 0, 2])).toarray()
    weighted = history_matrix(data, np.array([0]), "weight").toarray()
    np.testing.assert_array_equal(binary, [[0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(weighted, [[3, 1, 0, 0]])


def test_invalid_config():
    with pytest.raises(ConfigError, match="k must be"):
        ItemKNNScorer(k=-1)
    with pytest.raises(ConfigError, match="shrinkage must be >= 0"):
        ItemKNNScorer(shrinkage=-1.0)
    with pytest.raises(ConfigError, match="feedback must be one of"):
        ItemKNNScorer(feedback="ratings")


def test_history_matrix_ignores_events_weighted_zero():
    users, items = Vocabulary(["u"], "user"), Vocabulary(["a", "b"], "item")
    data = Interactions([0, 0], [0, 1], [1, 2], users, items, weight=[0.0, 1.0])
    assert history_matrix(data, np.array([0])).toarray().tolist() == [[0.0, 1.0]]
    assert history_matrix(data, np.array([0]), "weight").nnz == 1
