import itertools

import numpy as np
import pytest

from facetrec.errors import DataError
from facetrec.ranking import dpp, dpp_greedy, dpp_kernel


def naive_greedy(kernel, n):
    """Greedy MAP by brute force: each step adds the item maximising log det of the chosen set."""
    chosen: list[int] = []
    for _ in range(n):
        best, pick = -np.inf, -1
        for i in range(len(kernel)):
            if i in chosen:
                continue
            sign, logdet = np.linalg.slogdet(kernel[np.ix_([*chosen, i], [*chosen, i])])
            value = logdet if sign > 0 else -np.inf
            if value > best + 1e-12:
                best, pick = value, i
        chosen.append(pick)
    return chosen


@pytest.mark.parametrize("seed", range(5))
def test_incremental_cholesky_matches_brute_force_greedy(seed):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(7, 5))
    kernel = v @ v.T + 0.01 * np.eye(7)
    assert dpp_greedy(kernel, 4).tolist() == naive_greedy(kernel, 4)


@pytest.mark.parametrize("seed", range(3))
def test_greedy_on_tiny_planted_input_is_near_the_max_log_det_set(seed):
    rng = np.random.default_rng(seed)
    centres = np.eye(3)
    items = np.repeat(np.arange(3), 2)  # two near-copies per cluster
    v = centres[items] + 0.05 * rng.normal(size=(6, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    scores = rng.uniform(0.4, 0.6, 6)
    kernel = dpp_kernel(scores, v @ v.T, 0.5)
    best = max(itertools.combinations(range(6), 3), key=lambda s: np.linalg.slogdet(kernel[np.ix_(s, s)])[1])
    chosen = dpp(scores, v @ v.T, 0.5, 3)
    logdet = np.linalg.slogdet(kernel[np.ix_(chosen, chosen)])[1]
    optimum = np.linalg.slogdet(kernel[np.ix_(best, best)])[1]
    assert optimum - 0.05 <= logdet <= optimum + 1e-9  # greedy is not exact, but close here
    assert sorted(items[list(best)].tolist()) == sorted(items[chosen].tolist()) == [0, 1, 2]  # one per cluster


def test_dpp_picks_a_diverse_set_on_planted_clusters(planted):
    v = planted.vectors / np.linalg.norm(planted.vectors, axis=1, keepdims=True)
    scores = v @ planted.centres[0]  # cluster 0 is far more relevant
    scores = (scores - scores.min()) / np.ptp(scores)
    diverse = dpp(scores, v @ v.T, 0.3, 4)
    assert sorted(planted.cluster[diverse].tolist()) == [0, 1, 2, 3]
    relevant = dpp(scores, v @ v.T, 1.0, 4)
    assert planted.cluster[relevant].tolist() == [0, 0, 0, 0]


def test_exhausted_rank_fills_by_relevance():
    # rank-1 similarity: after the first pick only the jitter is left, so quality decides
    v = np.ones((5, 1))
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    assert dpp(scores, v @ v.T, 0.5, 5).tolist() == [1, 3, 2, 4, 0]


def test_bad_kernel():
    with pytest.raises(DataError, match="kernel"):
        dpp_greedy(np.ones((2, 3)), 1)


def test_reranker_without_the_full_kernel_matches_the_pure_function():
    from facetrec.ranking import CandidatePool, DPPReranker

    rng = np.random.default_rng(3)
    v = rng.normal(size=(100, 16))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rel = rng.random(100)
    pool = CandidatePool(np.arange(100), 5 * rel + 2, np.zeros(100, np.int32), np.ones(1), v)
    scaled = (rel - rel.min()) / np.ptp(rel)
    for lam in (0.3, 0.7, 0.95, 1.0):  # at lam = 0 every first pick ties, and rounding breaks the tie
        assert DPPReranker(lam).rerank(pool, 10).tolist() == dpp(scaled, v @ v.T, lam, 10).tolist()
