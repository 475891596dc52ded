import itertools

import numpy as np
import pytest

from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.metrics import head_items
from facetrec.ids import Vocabulary
from facetrec.ranking import RankConfig, Ranker
from facetrec.ranking.exposure import xquad
from facetrec.types import Interactions, ItemCatalog

HEAD_TAIL = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # items 0-2 head, item 3 tail


def test_hand_worked_example():
    scores = np.array([1.0, 0.9, 0.8, 0.3])
    target = np.array([0.5, 0.5])
    # lam 0.4: slot 1 gains 0.4 s + 0.6 * 0.5 for all -> item 0. Slot 2: the head is covered
    # (share 1), the tail not: 0.36, 0.32 vs 0.12 + 0.3 = 0.42 -> item 3. Slot 3: each group
    # has half the list: 0.36 + 0.15 = 0.51 vs 0.32 + 0.15 -> item 1.
    assert xquad(scores, HEAD_TAIL, target, 0.4, 3).tolist() == [0, 3, 1]
    # lam 0.6: slot 2 is 0.54 (item 1) vs 0.18 + 0.2 = 0.38 (item 3), slot 3 0.48 vs 0.38
    assert xquad(scores, HEAD_TAIL, target, 0.6, 3).tolist() == [0, 1, 2]


def test_lam_one_is_the_relevance_order_and_lam_zero_the_history_mix():
    rng = np.random.default_rng(0)
    scores = rng.random(100)
    groups = np.eye(2)[rng.integers(0, 2, 100)]
    assert xquad(scores, groups, np.array([0.3, 0.7]), 1.0, 10).tolist() == np.argsort(-scores)[:10].tolist()
    order = xquad(scores, groups, np.array([0.3, 0.7]), 0.0, 10)
    assert groups[order].sum(axis=0).tolist() == [3, 7]


def test_bad_input_is_one_clear_error():
    with pytest.raises(DataError, match="groups"):
        xquad(np.ones(3), np.ones((2, 2)), np.ones(2), 0.5, 2)
    with pytest.raises(DataError, match="target"):
        xquad(np.ones(2), np.ones((2, 2)), np.array([np.nan, 1.0]), 0.5, 2)
    with pytest.raises(ConfigError, match="exposure_groups"):
        RankConfig(diversity="xquad", exposure_groups="brand")


class LongTail:
    """300 items with Zipf popularity; relevance follows popularity, so relevance alone shows the head."""

    def __init__(self) -> None:
        rng = np.random.default_rng(1)
        self.n = 300
        pop = np.maximum(1, (2000 / np.arange(1, self.n + 1) ** 1.1).astype(int))
        items = np.repeat(np.arange(self.n), pop)
        users = rng.integers(0, 400, len(items))
        self.items = Vocabulary([f"i{i}" for i in range(self.n)], "item")
        times = np.zeros(len(items), np.int64)
        self.events = Interactions(users, items, times, Vocabulary(map(str, range(400)), "user"), self.items)
        self.head = head_items(self.events.users_per_item())
        self.scores = np.log(pop) + rng.normal(0, 1.0, (50, self.n))
        self.history = [rng.choice(self.n, 10, replace=False) for _ in range(50)]  # mostly tail, as most items

    def tail_share(self, ranker: Ranker) -> float:
        lists = [ranker.rank_scores(s, 10, history_idx=h).idx for s, h in zip(self.scores, self.history, strict=True)]
        return float(np.mean([~self.head[idx] for idx in lists]))


@pytest.fixture(scope="module")
def long_tail() -> LongTail:
    return LongTail()


def test_larger_weight_raises_the_long_tail_share_monotonically(long_tail):
    base = Ranker(RankConfig(diversity="none")).fit(None, ItemCatalog(long_tail.items), long_tail.events)
    shares = [long_tail.tail_share(base)]
    for lam in (0.9, 0.7, 0.5, 0.3, 0.0):
        shares.append(long_tail.tail_share(base.reconfigure(diversity="xquad", lam=lam)))
    assert all(b >= a for a, b in itertools.pairwise(shares)), shares
    assert shares[-1] > shares[0] + 0.2


def test_lam_one_reproduces_the_relevance_lists_exactly(long_tail):
    ranker = Ranker(RankConfig(diversity="xquad", lam=1.0)).fit(None, ItemCatalog(long_tail.items), long_tail.events)
    plain = ranker.reconfigure(diversity="none")
    for s, h in zip(long_tail.scores[:10], long_tail.history[:10], strict=True):
        a, b = ranker.rank_scores(s, 10, history_idx=h), plain.rank_scores(s, 10, history_idx=h)
        assert a.idx.tolist() == b.idx.tolist()
        np.testing.assert_array_equal(a.scores, b.scores)


def test_category_groups_follow_the_history_categories(planted):
    ranker = Ranker(RankConfig(diversity="xquad", exposure_groups="category", lam=0.0)).fit(
        planted.vectors, planted.catalog
    )
    history = np.array([25, 26, 50])  # two Horror items, one Comedy
    scores = planted.vectors @ planted.centres[0]  # relevance says Sci-Fi only
    found = ranker.rank_scores(scores, 6, history_idx=history)
    assert np.bincount(planted.cluster[found.idx], minlength=4).tolist() == [0, 4, 2, 0]


def test_needs_what_it_groups_by(planted):
    with pytest.raises(ConfigError, match="interactions"):
        Ranker(RankConfig(diversity="xquad")).fit(planted.vectors, planted.catalog)
    plain = ItemCatalog(planted.items)
    with pytest.raises(ConfigError, match="categories"):
        Ranker(RankConfig(diversity="xquad", exposure_groups="category")).fit(planted.vectors, plain)


def test_popularity_groups_aim_at_their_catalogue_share_even_without_history(long_tail):
    ranker = Ranker(RankConfig(diversity="xquad", lam=0.0)).fit(None, ItemCatalog(long_tail.items), long_tail.events)
    head = long_tail.head
    assert 0 < head.sum() < 0.1 * long_tail.n
    found = ranker.rank_scores(long_tail.scores[0], 10, history_idx=[])
    # lam 0: slot 1 goes to the long tail (its share of items), slot 2 to the head (the tail's
    # share of the list is then 1), and the tail takes every later slot
    assert head[found.idx].tolist() == [False, True] + [False] * 8
