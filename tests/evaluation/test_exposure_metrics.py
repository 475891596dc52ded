"""Popularity bias and exposure metrics: hand-computed values on tiny examples, and agreement with
plain-Python versions written from the definitions on random lists."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from facetrec.errors import DataError
from facetrec.evaluation import metrics as m
from facetrec.evaluation.protocol import METRICS, EvalConfig, parse_metric

# 6 items, popularity 50, 30, 10, 5, 5, 0 (total 100): the head (20 % of popularity) is item 0
# alone; the tail (the last 20 %) is items 5, 4, 3, 2 counted from the end (0 + 5 + 5 + 10 = 20).
POP = np.array([50, 30, 10, 5, 5, 0])
RANKED = np.array([[0, 1, -1], [2, 3, 4], [0, 5, 1]])


def test_buckets_hand_computed() -> None:
    assert m.popularity_buckets(POP).tolist() == [0, 1, 2, 2, 2, 2]
    assert m.head_items(POP).tolist() == [True, False, False, False, False, False]
    # share 0.6: the head needs items 0 and 1 (50 + 30 >= 60); the tail would reach into the head,
    # so it stops at the rest (items 2-5); ties keep the lower index first
    assert m.popularity_buckets(POP, 0.6).tolist() == [0, 0, 2, 2, 2, 2]
    assert m.popularity_buckets([3, 3, 3, 3, 3]).tolist() == [0, 1, 1, 1, 2]
    assert m.popularity_buckets([0, 0]).tolist() == [2, 2]


def test_arp_and_long_tail_hand_computed() -> None:
    np.testing.assert_allclose(m.average_popularity(RANKED, 3, POP), [40, 20 / 3, 80 / 3])
    np.testing.assert_allclose(m.average_popularity(RANKED, 1, POP), [50, 10, 50])
    np.testing.assert_allclose(m.long_tail_share(RANKED, 3, POP), [1 / 2, 1, 2 / 3])
    empty = m.long_tail_share(np.array([[-1, -1]]), 2, POP)
    assert np.isnan(empty).all() and np.isnan(m.average_popularity(np.array([[-1]]), 1, POP)).all()


def test_exposure_and_gini_hand_computed() -> None:
    np.testing.assert_allclose(m.exposure(RANKED, 3, 6), [2, 2, 1, 1, 1, 1])
    # sorted exposure 1,1,1,1,2,2 (total 8): sum (2i - 7) x_i = -5 - 3 - 1 + 1 + 6 + 10 = 8
    assert m.exposure_gini(RANKED, 3, 6) == pytest.approx(8 / (6 * 8))
    assert m.exposure_gini(np.array([[0, 1], [1, 0]]), 2, 2) == 0.0  # equal exposure
    assert m.exposure_gini(np.array([[0], [0]]), 1, 4) == pytest.approx(3 / 4)  # one item gets it all
    discounted = m.exposure(np.array([[0, 1]]), 2, 3, discount=True)
    np.testing.assert_allclose(discounted, [1, 1 / np.log2(3), 0])
    assert np.isnan(m.exposure_gini(np.array([[-1]]), 1, 3))


def test_exposure_share_hand_computed() -> None:
    groups = np.array([0, 0, 1, 1, 1, -1])  # item 5 has no group
    np.testing.assert_allclose(m.exposure_share(RANKED, 3, groups), [4 / 8, 3 / 8])
    multi = sp.csr_matrix(np.array([[1, 1], [1, 0], [0, 1], [0, 1], [0, 1], [0, 1]]))
    np.testing.assert_allclose(m.exposure_share(RANKED, 3, multi), [(1 + 2) / 8, (1 + 4) / 8])
    with pytest.raises(DataError, match="no list holds an item"):
        m.exposure_share(np.array([[-1]]), 1, groups)


def test_bad_input_is_one_line() -> None:
    with pytest.raises(DataError, match="item_popularity: 1 negative counts"):
        m.long_tail_share(RANKED, 3, [1, -1, 0, 0, 0, 0])
    with pytest.raises(DataError, match="outside the item range"):
        m.average_popularity(np.array([[7]]), 1, POP)
    with pytest.raises(DataError, match=r"share: must be in \(0, 1\)"):
        m.popularity_buckets(POP, 1.5)
    with pytest.raises(DataError, match="n_items: must be a positive integer"):
        m.exposure_gini(RANKED, 3, 0)


def _reference_buckets(pop: list[float], share: float = 0.2) -> list[int]:
    order = sorted(range(len(pop)), key=lambda i: (-pop[i], i))
    total = sum(pop)
    head, running = set(), 0.0
    for i in order:
        if running >= share * total:
            break
        head.add(i)
        running += pop[i]
    tail, running = set(), 0.0
    for i in reversed(order):
        if running >= share * total or i in head:
            break
        tail.add(i)
        running += pop[i]
    return [0 if i in head else 2 if i in tail else 1 for i in range(len(pop))]


def _reference_gini(values: list[float]) -> float:
    """Mean absolute difference over all ordered pairs, over twice the mean (the textbook Gini)."""
    n, total = len(values), sum(values)
    return sum(abs(a - b) for a in values for b in values) / (2 * n * total)


def test_agrees_with_plain_python_on_random_lists() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n_items = int(rng.integers(5, 40))
        pop = rng.integers(0, 30, n_items).astype(float)
        pop[0] = max(pop[0], 1)
        ranked = np.array([rng.permutation(n_items)[:5] for _ in range(12)])
        ranked[rng.random(ranked.shape) < 0.1] = -1
        k = int(rng.integers(1, 6))
        buckets = _reference_buckets(pop.tolist())
        assert m.popularity_buckets(pop).tolist() == buckets
        arps, tails = m.average_popularity(ranked, k, pop), m.long_tail_share(ranked, k, pop)
        for row, (arp, tail) in enumerate(zip(arps, tails, strict=True)):
            listed = [int(i) for i in ranked[row, :k] if i >= 0]
            if not listed:
                assert np.isnan(arp) and np.isnan(tail)
                continue
            assert arp == pytest.approx(sum(pop[i] for i in listed) / len(listed))
            assert tail == pytest.approx(sum(buckets[i] != 0 for i in listed) / len(listed))
        counts = [sum(int(i) == item for i in ranked[:, :k].ravel()) for item in range(n_items)]
        if sum(counts):
            assert m.exposure_gini(ranked, k, n_items) == pytest.approx(_reference_gini(counts))
            groups = rng.integers(-1, 3, n_items)
            shares = [
                sum(c for c, g in zip(counts, groups, strict=True) if g == j) / sum(counts)
                for j in range(groups.max() + 1)
            ]
            np.testing.assert_allclose(m.exposure_share(ranked, k, groups), shares)


def test_registered_for_evaluate() -> None:
    config = EvalConfig(metrics=("arp@10", "long_tail_share@10", "exposure_gini@20"))
    assert [parse_metric(name)[0] for name in config.metrics] == ["arp", "long_tail_share", "exposure_gini"]
    assert {"arp", "long_tail_share", "exposure_gini"} <= set(METRICS)
