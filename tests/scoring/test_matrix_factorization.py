from typing import Any, ClassVar

import numpy as np
import pytest

from facetrec.errors import ConfigError
from facetrec.ids import Vocabulary
from facetrec.scoring.matrix_factorization import ALSScorer, BPRScorer
from facetrec.testing import ScorerConformance
from facetrec.types import Interactions


class TestALSConformance(ScorerConformance):
    component = ALSScorer
    params: ClassVar[dict[str, Any]] = {"factors": 8, "iterations": 3, "num_threads": 2}


class TestBPRConformance(ScorerConformance):
    component = BPRScorer
    params: ClassVar[dict[str, Any]] = {"factors": 8, "iterations": 5}


ITEMS = Vocabulary([f"i{j}" for j in range(10)], "item")


def checkerboard() -> Interactions:
    """Users 0-9 like items 0-4, users 10-19 items 5-9; user u has not seen item (u % 5) of its block."""
    x = np.zeros((20, 10), dtype=bool)
    x[:10, :5] = x[10:, 5:] = True
    users = np.arange(20)
    x[users, (users % 5) + 5 * (users >= 10)] = False
    u, i = np.nonzero(x)
    return Interactions(u, i, np.arange(len(u)), Vocabulary([f"u{k}" for k in range(20)], "user"), ITEMS)


def newcomer(items: list[int]) -> Interactions:
    n = len(items)
    return Interactions(
        np.zeros(n, np.int32), np.array(items, np.int32), np.arange(n), Vocabulary(["new"], "user"), ITEMS
    )


@pytest.mark.parametrize(
    "scorer",
    [
        ALSScorer(factors=2, regularization=0.1, alpha=10.0, iterations=10),
        BPRScorer(factors=4, learning_rate=0.05, iterations=200),
    ],
    ids=["als", "bpr"],
)
def test_checkerboard_users_prefer_their_own_block(scorer):
    data = checkerboard()
    scores = scorer.fit(data).score(data, np.arange(20))
    users = np.arange(20)
    own_block = users >= 10
    unseen = scores[users, (users % 5) + 5 * own_block]
    other = np.where(own_block[:, None], scores[:, :5], scores[:, 5:])
    assert (unseen[:, None] > other).all()
    new = scorer.score(newcomer([5, 6]), np.array([0]))[0]  # a new user from history alone
    assert new[7:].min() > new[:5].max()


def test_bpr_keeps_the_bias_column_apart():
    scorer = BPRScorer(factors=3, iterations=2).fit(checkerboard())
    assert scorer.item_factors_.shape == (10, 3) and scorer.item_bias_.shape == (10,)
    np.testing.assert_allclose(scorer.score(newcomer([]), np.array([0]))[0], scorer.item_bias_)


def test_als_folds_in_like_implicit():
    data = checkerboard()
    scorer = ALSScorer(factors=4, regularization=0.01, iterations=5, alpha=3.0).fit(data)
    history = scorer.user_factors(data, np.array([3]))
    # one user solved by hand: (YtY + reg I + Yu^T (C-1) Yu) x = Yu^T C 1, C = alpha on seen items
    y = scorer.item_factors_.astype(np.float64)
    seen = np.array([0, 1, 2, 4])
    a = y.T @ y + 0.01 * np.eye(4) + 2.0 * y[seen].T @ y[seen]
    np.testing.assert_allclose(history[0], np.linalg.solve(a, 3.0 * y[seen].sum(axis=0)), rtol=1e-3, atol=1e-5)


def test_invalid_config():
    with pytest.raises(ConfigError, match="factors must be > 0"):
        ALSScorer(factors=0)
    with pytest.raises(ConfigError, match="regularization must be >= 0"):
        ALSScorer(regularization=-1.0)
    with pytest.raises(ConfigError, match="alpha must be > 0"):
        ALSScorer(alpha=0.0)
    with pytest.raises(ConfigError, match="feedback must be one of"):
        ALSScorer(feedback="counts")
    with pytest.raises(ConfigError, match="learning_rate must be > 0"):
        BPRScorer(learning_rate=0.0)
    with pytest.raises(ConfigError, match="iterations must be > 0"):
        BPRScorer(iterations=0)
    with pytest.raises(ConfigError, match="num_threads must be >= 0"):
        BPRScorer(num_threads=-2)
