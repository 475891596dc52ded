import numpy as np
import pytest

from facetrec.errors import DataError
from facetrec.ids import Vocabulary
from facetrec.ranking import Ranker, TrendingCounter, decay_weights, freshness, trending
from facetrec.types import Interactions, ItemCatalog, UserState

DAY = 86_400


def test_decay_weights_halve_every_half_life():
    now = 100 * DAY
    w = decay_weights(np.array([now, now - 10 * DAY, now - 20 * DAY, now + DAY]), now, 10.0)
    np.testing.assert_allclose(w, [1.0, 0.5, 0.25, 1.0])
    with pytest.raises(DataError, match="half_life_days"):
        decay_weights(np.array([0]), 0, 0.0)


def test_freshness_and_trending_scores():
    now = 50 * DAY
    np.testing.assert_allclose(freshness(np.array([now, now - 7 * DAY, np.nan, now + DAY]), now, 7.0),
                               [1.0, 0.5, 0.0, 1.0])  # fmt: skip
    np.testing.assert_allclose(trending(np.array([0, 1, 3])), [0.0, np.log(2) / np.log(4), 1.0])
    np.testing.assert_allclose(trending(np.zeros(3)), 0.0)


def test_trending_counter_window():
    counter = TrendingCounter(np.array([0, 1, 1, 2, 2, 2]), np.array([1, 9, 10, 3, 11, 12]) * DAY, 4)
    assert counter.counts(12 * DAY, 3.0).tolist() == [0, 1, 2, 0]  # window (9, 12] days: the event at 9 is out
    assert counter.counts(12 * DAY, 30.0).tolist() == [1, 2, 3, 0]
    assert counter.scores(12 * DAY, 30.0)[2] == 1.0


def test_decayed_history_moves_the_ranking_towards_recent_interests(planted):
    # history: old cluster-0 items, recent cluster-2 items; interest = weighted mean of history vectors
    history = np.array([0, 1, 2, 3, 50, 51])
    times = np.array([0, 1, 2, 3, 99, 100]) * DAY
    ranker = Ranker().fit(planted.vectors, planted.catalog)

    def top_cluster(weights):
        interest = (weights[:, None] * planted.vectors[history]).sum(0, keepdims=True)
        state = UserState(interest, [1.0], history, np.full((1, 6), 1 / 6))
        return planted.cluster[ranker.rank(state, 1).idx[0]]

    assert top_cluster(np.ones(6)) == 0  # four old items outweigh two recent ones
    assert top_cluster(decay_weights(times, 100 * DAY, 14.0)) == 2


def base_ranker_data():
    items = Vocabulary(["old", "new", "mid"], "item")
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.95, 0.05]], np.float32)
    catalog = ItemCatalog(items=items, created_at=np.array([0.0, 99 * DAY, 50 * DAY]))
    return vectors, catalog


def test_freshness_boost_lifts_new_items():
    vectors, catalog = base_ranker_data()
    state = UserState(np.array([[1.0, 0.0]]), [1.0], np.zeros(0, np.int32), np.zeros((1, 0)))
    plain = Ranker().fit(vectors, catalog).rank(state, 3)
    assert plain.ids.tolist() == ["old", "mid", "new"]
    # weight 2: a brand-new item gains twice the pool's score range (0.1): 0.9 + 0.2 > 1.0
    fresh = Ranker(freshness_weight=2.0, freshness_half_life_days=10.0).fit(vectors, catalog)
    assert fresh.rank(state, 3, now=100 * DAY).ids.tolist() == ["new", "old", "mid"]
    # long after every item was created, freshness no longer reorders
    assert fresh.rank(state, 3, now=5000 * DAY).ids.tolist() == ["old", "mid", "new"]


def test_trending_boost_lifts_recently_popular_items():
    vectors, catalog = base_ranker_data()
    users = Vocabulary(["a", "b", "c"], "user")
    events = Interactions([0, 1, 2, 0], [1, 1, 1, 0], np.array([95, 96, 97, 10]) * DAY, users, catalog.items)
    state = UserState(np.array([[1.0, 0.0]]), [1.0], np.zeros(0, np.int32), np.zeros((1, 0)))
    ranker = Ranker(trending_weight=2.0, trending_window_days=7.0).fit(vectors, catalog, events)
    assert ranker.rank(state, 3, now=100 * DAY).ids.tolist() == ["new", "old", "mid"]
    assert ranker.rank(state, 3).ids.tolist() == ["new", "old", "mid"]  # default now: the last event (97 days)
    assert ranker.rank(state, 3, now=300 * DAY).ids.tolist() == ["old", "mid", "new"]  # the trend has passed


def test_decay_weights_accept_a_now_per_event():
    w = decay_weights(np.array([0, 0, 10]) * DAY, np.array([10, 20, 10]) * DAY, 10.0)
    np.testing.assert_allclose(w, [0.5, 0.25, 1.0])
