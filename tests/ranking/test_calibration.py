import numpy as np
import pytest
import scipy.sparse as sp

from facetrec.errors import DataError
from facetrec.evaluation.metrics import calibration_kl
from facetrec.ranking import calibrate, category_distribution


def one_hot(cats, n_cats):
    return np.eye(n_cats)[cats]


def test_hand_worked_example():
    # user: 50 % A, 50 % B. Candidates by relevance: A, A, B.
    scores = np.array([1.0, 0.9, 0.5])
    dist = one_hot([0, 0, 1], 2)
    target = np.array([0.5, 0.5])
    # lam = 1: relevance -> {0, 1}
    assert calibrate(scores, dist, target, 1.0, 2).tolist() == [0, 1]
    # lam = 0.5: first pick: all single items have KL(p || 0.99 q + 0.01 p) equal -> relevance: 0.
    # second: adding 1 gives q = (1, 0): KL = 0.5 log(0.5/0.995) + 0.5 log(0.5/0.005) = 1.959;
    # adding 2 gives q = (0.5, 0.5): KL = 0. Gains: 0.45 - 0.98 vs 0.25 - 0 -> item 2.
    assert calibrate(scores, dist, target, 0.5, 2).tolist() == [0, 2]


def test_lam_zero_matches_the_target_mix_and_lowers_the_metric():
    rng = np.random.default_rng(0)
    cats = rng.integers(0, 4, 200)
    scores = rng.random(200) + (cats == 0)  # relevance prefers category 0
    target = np.array([0.4, 0.3, 0.2, 0.1])
    order = calibrate(scores, one_hot(cats, 4), target, 0.0, 10)
    assert np.bincount(cats[order], minlength=4).tolist() == [4, 3, 2, 1]
    # the evaluation metric reads the same KL: a history of one item per category, weighted by the mix
    base = np.argsort(-scores)[:10]
    item_cats = sp.csr_matrix(one_hot(cats, 4))
    history = sp.csr_matrix((target * 10, ([0] * 4, [int(np.flatnonzero(cats == c)[0]) for c in range(4)])),
                            shape=(1, 200))  # fmt: skip
    kl_base = calibration_kl(base[None], 10, item_cats, history)[0]
    kl_cal = calibration_kl(order[None], 10, item_cats, history)[0]
    assert kl_cal < 0.01 < kl_base


def test_category_distribution_splits_multi_category_items():
    m = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=float))
    np.testing.assert_allclose(category_distribution(m, np.array([0, 1])), [0.25, 0.25, 0.5])
    np.testing.assert_allclose(category_distribution(m, np.array([2])), [0, 0, 0])


def test_bad_input():
    with pytest.raises(DataError, match="item_dist"):
        calibrate(np.ones(3), np.ones((2, 2)), np.ones(2), 0.5, 2)
