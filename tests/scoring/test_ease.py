from typing import Any, ClassVar

import numpy as np
import pytest

from facetrec.errors import ConfigError
from facetrec.ids import Vocabulary
from facetrec.scoring.ease import EASEScorer
from facetrec.testing import ScorerConformance
from facetrec.types import Interactions


class TestEASEConformance(ScorerConformance):
    component = EASEScorer
    params: ClassVar[dict[str, Any]] = {"l2": 50.0}


def matrix_log(x: np.ndarray) -> Interactions:
    users, items = np.nonzero(x)
    return Interactions(
        users,
        items,
        np.arange(len(users)),
        Vocabulary([f"u{i}" for i in range(x.shape[0])], "user"),
        Vocabulary([f"i{j}" for j in range(x.shape[1])], "item"),
    )


X = (np.random.default_rng(3).random((12, 5)) < 0.5).astype(np.float64)


def test_matches_the_closed_form_and_per_column_ridge_regressions():
    l2 = 2.0
    scorer = EASEScorer(l2=l2).fit(matrix_log(X))
    p = np.linalg.inv(X.T @ X + l2 * np.eye(5))
    paper = np.eye(5) - p / np.diag(p)  # Steck (2019), eq. 8: B = I - P diagMat(1 / diag(P))
    np.testing.assert_allclose(scorer.B_, paper, atol=1e-6)
    np.testing.assert_array_equal(np.diag(scorer.B_), 0.0)
    # the same B, derived independently: column j is the ridge regression of item j on the other items
    for j in range(5):
        others = np.delete(np.arange(5), j)
        xo = X[:, others]
        ridge = np.linalg.solve(xo.T @ xo + l2 * np.eye(4), xo.T @ X[:, j])
        np.testing.assert_allclose(scorer.B_[others, j], ridge, atol=1e-6)


def test_scores_are_history_rows_times_b():
    data = matrix_log(X)
    scorer = EASEScorer(l2=2.0).fit(data)
    np.testing.assert_allclose(scorer.score(data, np.array([4, 0])), X[[4, 0]] @ scorer.B_, atol=1e-6)


def test_refuses_large_catalogues_with_the_memory_it_would_need():
    with pytest.raises(ConfigError, match=r"5 items, above max_items=4.*GiB.*raise max_items"):
        EASEScorer(max_items=4).fit(matrix_log(X))


def test_invalid_config():
    with pytest.raises(ConfigError, match="l2 must be > 0"):
        EASEScorer(l2=0.0)
    with pytest.raises(ConfigError, match="max_items must be"):
        EASEScorer(max_items=0)
    with pytest.raises(ConfigError, match="feedback must be one of"):
        EASEScorer(feedback="rating")
