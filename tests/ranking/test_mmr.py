import numpy as np
import pytest

from facetrec.errors import ConfigError, DataError
from facetrec.ranking import CandidatePool, MMRReranker, mmr


def test_hand_worked_example():
    # items 0 and 1 are near-duplicates; 2 is different but less relevant
    scores = np.array([1.0, 0.9, 0.5])
    sim = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]])
    # lam = 0.5: first pick 0 (0.5 vs 0.45 vs 0.25). Then item 1: 0.45 - 0.45 = 0.00,
    # item 2: 0.25 - 0.05 = 0.20 -> 2. Last: item 1.
    assert mmr(scores, sim, 0.5, 3).tolist() == [0, 2, 1]
    # lam = 0.9: item 1: 0.81 - 0.09 = 0.72, item 2: 0.45 - 0.01 = 0.44 -> relevance wins
    assert mmr(scores, sim, 0.9, 3).tolist() == [0, 1, 2]


def test_lam_one_is_relevance_order_and_n_caps():
    rng = np.random.default_rng(1)
    scores = rng.random(20)
    v = rng.normal(size=(20, 4))
    assert mmr(scores, v @ v.T, 1.0, 7).tolist() == np.argsort(-scores)[:7].tolist()
    assert len(mmr(scores, v @ v.T, 0.3, 50)) == 20


def test_lam_zero_returns_one_item_per_cluster(planted):
    v = planted.vectors / np.linalg.norm(planted.vectors, axis=1, keepdims=True)
    scores = v @ planted.centres[0]  # relevance favours cluster 0 heavily
    order = mmr(scores, v @ v.T, 0.0, 4)
    assert order[0] == np.argmax(scores)  # ties at lam = 0 go to the most relevant item
    assert sorted(planted.cluster[order].tolist()) == [0, 1, 2, 3]


def test_reranker_scales_relevance_to_unit_range(planted):
    v = planted.vectors[:50] / np.linalg.norm(planted.vectors[:50], axis=1, keepdims=True)
    rel = v @ planted.centres[0]
    pool = CandidatePool(np.arange(50), rel, np.zeros(50, np.int32), np.ones(1), v)
    scaled = CandidatePool(np.arange(50), 1000 * rel + 7, np.zeros(50, np.int32), np.ones(1), v)
    assert MMRReranker(0.6).rerank(pool, 10).tolist() == MMRReranker(0.6).rerank(scaled, 10).tolist()


def test_bad_input():
    with pytest.raises(ConfigError, match="lam"):
        mmr(np.ones(2), np.eye(2), 1.5, 1)
    with pytest.raises(DataError, match="scores"):
        mmr(np.array([1.0, np.nan]), np.eye(2), 0.5, 1)
    with pytest.raises(DataError, match="sim"):
        mmr(np.ones(3), np.eye(2), 0.5, 1)
    with pytest.raises(DataError, match="n"):
        mmr(np.ones(2), np.eye(2), 0.5, 0)


def test_reranker_without_the_full_matrix_matches_the_pure_function(planted):
    v = planted.vectors / np.linalg.norm(planted.vectors, axis=1, keepdims=True)
    rel = v @ (planted.centres[1] + 0.3 * planted.centres[3])
    pool = CandidatePool(np.arange(100), rel, np.zeros(100, np.int32), np.ones(1), v)
    scaled = (rel - rel.min()) / np.ptp(rel)
    for lam in (0.0, 0.4, 0.9, 1.0):
        assert MMRReranker(lam).rerank(pool, 10).tolist() == mmr(scaled, v @ v.T, lam, 10).tolist()
