import numpy as np
import pytest

from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.evalset import EvalSet
from facetrec.evaluation.protocol import evaluate_clicks, evaluate_ratings
from facetrec.ids import Vocabulary
from facetrec.scoring.bias import BiasScorer
from facetrec.scoring.popularity import PopularityScorer
from facetrec.testing import ScorerConformance
from facetrec.types import Event, Interactions

USERS = Vocabulary(["a", "b", "c"], "user")
ITEMS = Vocabulary(["x", "y", "z"], "item")


class TestBiasConformance(ScorerConformance):
    component = BiasScorer


def rated(users, items, ratings):
    return Interactions(users, items, np.arange(len(users)), USERS, ITEMS, rating=ratings)


def test_unregularised_biases_match_hand_computed_means():
    # every user rated every item: additive model fits exactly
    true_user, true_item = np.array([1.0, 0.0, -1.0]), np.array([0.5, 0.0, -0.5])
    users, items = np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3)
    ratings = 3.0 + true_user[users] + true_item[items]
    data = rated(users, items, ratings)
    scorer = BiasScorer(user_l2=0.0, item_l2=0.0, rounds=20).fit(data)
    np.testing.assert_allclose(
        scorer.score(data, np.arange(3)), (3.0 + true_user[:, None] + true_item[None, :]), atol=1e-5
    )
    assert scorer.mean_ == pytest.approx(3.0)


def test_rating_protocol_by_hand_and_refuses_non_rating_models():
    train = rated([0, 0, 1, 1], [0, 1, 0, 1], [4.0, 2.0, 5.0, 3.0])
    targets = rated([0, 1], [2, 2], [3.0, 1.0])
    scorer = BiasScorer(user_l2=0.0, item_l2=0.0).fit(train)
    result = evaluate_ratings(scorer, EvalSet(train, targets))
    predicted = scorer.score(train, np.array([0, 1]))[:, 2]
    errors = predicted - np.array([3.0, 1.0])
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert result["mae"] == pytest.approx(np.mean(np.abs(errors)))
    with pytest.raises(DataError, match="PopularityScorer does not predict ratings"):
        evaluate_ratings(PopularityScorer().fit(train), EvalSet(train, targets))
    with pytest.raises(ConfigError, match="rounds >= 1"):
        BiasScorer(rounds=0)
    with pytest.raises(DataError, match="has no ratings"):
        BiasScorer().fit(Interactions([0], [0], [0], USERS, ITEMS))


def test_click_auc_by_hand():
    # popularity: x (2 users) > y (1 user) > z (0); user a clicked x, saw z; user b clicked z, saw y
    train = Interactions([0, 1, 2, 2], [0, 0, 1, 0], [0, 1, 2, 3], USERS, ITEMS)
    targets = Interactions(
        [0, 0, 1, 1], [0, 2, 2, 1], [5, 5, 6, 6], USERS, ITEMS, event=[Event.CLICK, Event.VIEW, Event.CLICK, Event.VIEW]
    )
    result = evaluate_clicks(PopularityScorer().fit(train), EvalSet(train, targets), [Event.CLICK], [Event.VIEW])
    # scores: a/x 1.0 (+), a/z 0 (-), b/z 0 (+), b/y 0.5 (-): pairs (+ > -): 1.0>0 yes, 1.0>0.5 yes, 0>0 tie, 0>0.5 no
    assert result["auc"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert result["gauc"] == pytest.approx((1.0 + 0.0) / 2)
    with pytest.raises(DataError, match="both positive and negative"):
        evaluate_clicks(PopularityScorer().fit(train), EvalSet(train, targets), [Event.PURCHASE], [Event.VIEW])
