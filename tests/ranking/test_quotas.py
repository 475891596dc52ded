import numpy as np
import pytest

from facetrec.errors import DataError
from facetrec.ranking import largest_remainder, quotas


@pytest.mark.parametrize(
    ("weights", "n", "expected"),
    [
        ([0.5, 0.3, 0.2], 10, [5, 3, 2]),
        ([1 / 3, 1 / 3, 1 / 3], 10, [4, 3, 3]),  # equal remainders: lower index
        ([0.6, 0.4], 3, [2, 1]),  # exact 1.8 / 1.2: the larger remainder (0.8) gets the slot
        ([0.05, 0.95], 10, [0, 10]),  # 0.5 / 9.5: remainders tie, the larger weight wins
        ([2.0, 1.0, 1.0], 4, [2, 1, 1]),  # weights need not sum to 1
        ([0.7, 0.3], 0, [0, 0]),
    ],
)
def test_largest_remainder_known_answers(weights, n, expected):
    counts = largest_remainder(np.array(weights), n)
    assert counts.tolist() == expected
    assert counts.sum() == n


def test_strict_quotas_respect_interest_weights():
    rng = np.random.default_rng(0)
    interest = np.repeat([0, 1, 2], 30)
    scores = rng.random(90) + np.where(interest == 0, 1.0, 0.0)  # interest 0 dominates relevance
    weights = np.array([0.5, 0.3, 0.2])
    order = quotas(scores, interest, weights, 0.0, 10)
    assert np.bincount(interest[order], minlength=3).tolist() == [5, 3, 2]
    # each interest's slots hold its most relevant items, and the list is shown by relevance
    for j, count in enumerate([5, 3, 2]):
        best = np.flatnonzero(interest == j)[np.argsort(-scores[interest == j])[:count]]
        assert set(order[interest[order] == j]) == set(best)
    assert np.all(np.diff(scores[order]) <= 0)


def test_lam_one_is_relevance_and_lam_blends():
    rng = np.random.default_rng(1)
    interest = np.repeat([0, 1], 20)
    scores = rng.random(40) + np.where(interest == 0, 1.0, 0.0)
    weights = np.array([0.5, 0.5])
    assert quotas(scores, interest, weights, 1.0, 10).tolist() == np.argsort(-scores)[:10].tolist()
    half = quotas(scores, interest, weights, 0.5, 10)  # target 0.5 * [1, 0] + 0.5 * [0.5, 0.5] = [0.75, 0.25]
    assert np.bincount(interest[half], minlength=2).tolist() == [8, 2]  # 7.5 / 2.5 -> tie to the larger weight


def test_short_interest_slots_go_to_the_best_of_the_rest():
    interest = np.array([0, 0, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.1])
    order = quotas(scores, interest, np.array([0.2, 0.8]), 0.0, 5)  # interest 1 wants 4 slots, has 1 item
    assert sorted(order.tolist()) == [0, 1, 2, 3, 6]


def test_bad_input():
    with pytest.raises(DataError, match="weights"):
        largest_remainder(np.array([0.0, 0.0]), 3)
    with pytest.raises(DataError, match="interest"):
        quotas(np.ones(3), np.array([0, 1, 2]), np.array([0.5, 0.5]), 0.0, 2)
