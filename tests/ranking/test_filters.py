import numpy as np
import pytest

from facetrec.errors import DataError
from facetrec.ranking import Ranker, Rules, allowed_mask


def test_allowed_mask():
    mask = allowed_mask(6, np.array([0, 1]), np.array([4]))
    assert mask.tolist() == [False, False, True, True, False, True]
    rules = np.array([True, True, True, False, True, True])
    assert allowed_mask(6, np.array([0]), None, rules).tolist() == [False, True, True, False, True, True]
    assert rules[3] == np.False_  # the rules mask itself is not modified


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
@pytest.mark.parametrize("diversity", ["none", "mmr", "dpp", "quotas", "calibration"])
def test_seen_and_blocked_items_are_never_returned(planted, kind, diversity):
    ranker = Ranker(retrieval=kind, diversity=diversity, lam=0.3, candidates=30).fit(planted.vectors, planted.catalog)
    rng = np.random.default_rng(0)
    for _ in range(5):
        history = rng.choice(100, 20, replace=False)
        blocked = rng.choice(100, 30, replace=False)
        state = planted.state([0, 1], [0.6, 0.4], history)
        out = ranker.rank(state, 10, exclude_idx=blocked)
        assert len(out) == 10
        assert not set(out.idx) & (set(history) | set(blocked))
        scores = rng.normal(size=100)
        out = ranker.rank_scores(scores, 10, blocked, history_idx=history)
        assert len(out) == 10
        assert not set(out.idx) & (set(history) | set(blocked))


def test_filters_leaving_fewer_items_than_n_give_a_short_list(planted):
    ranker = Ranker().fit(planted.vectors, planted.catalog)
    state = planted.state([0], [1.0], np.arange(50))
    out = ranker.rank(state, 10, exclude_idx=np.arange(50, 96))
    assert sorted(out.idx.tolist()) == [96, 97, 98, 99]
    assert len(ranker.rank(state, 10, exclude_idx=np.arange(50, 100))) == 0


def test_business_rules(planted):
    ranker = Ranker(candidates=20).fit(planted.vectors, planted.catalog)
    state = planted.state([0, 1], [0.5, 0.5])
    horror = ranker.rank(state, 10, rules=Rules(include_categories=("Horror",)))
    assert set(planted.cluster[horror.idx]) == {1}
    no_scifi = ranker.rank(state, 10, rules={"exclude_categories": ["Sci-Fi"]})
    assert 0 not in set(planted.cluster[no_scifi.idx])
    cheap = ranker.rank(state, 10, rules=Rules(ranges={"price": (None, 30.0)}))
    assert planted.catalog.numeric["price"][cheap.idx].max() <= 30.0
    band = ranker.rank_scores(np.ones(100), 100, rules=Rules(ranges=(("price", 10, 12),)))
    assert sorted(band.idx.tolist()) == [10, 11, 12]


def test_missing_attribute_values(planted):
    price = planted.catalog.numeric["price"].copy()
    price[:5] = np.nan
    catalog = type(planted.catalog)(items=planted.items, numeric={"price": price})
    ranker = Ranker().fit(planted.vectors, catalog)
    strict = ranker.rank_scores(np.ones(100), 100, rules=Rules(ranges={"price": (None, 7.0)}))
    assert sorted(strict.idx.tolist()) == [5, 6, 7]
    lenient = ranker.rank_scores(np.ones(100), 100, rules=Rules(ranges={"price": (None, 7.0)}, keep_missing=True))
    assert sorted(lenient.idx.tolist()) == [0, 1, 2, 3, 4, 5, 6, 7]


def test_rule_errors_name_the_field(planted):
    ranker = Ranker().fit(planted.vectors, planted.catalog)
    state = planted.state([0], [1.0])
    with pytest.raises(DataError, match=r"include_categories: category 'horror'.*did you mean 'Horror'"):
        ranker.rank(state, 5, rules=Rules(include_categories=("horror",)))
    with pytest.raises(DataError, match="attribute 'weight' is not a numeric catalogue attribute"):
        ranker.rank(state, 5, rules=Rules(ranges={"weight": (0, 1)}))
    with pytest.raises(DataError, match="low 5.0 is above high 1.0"):
        Rules(ranges={"price": (5, 1)})
    with pytest.raises(DataError, match="unknown key 'category'"):
        ranker.rank(state, 5, rules={"category": "Horror"})
    with pytest.raises(DataError, match="exclude_idx: item index 100 is outside"):
        ranker.rank(state, 5, exclude_idx=np.array([100]))
