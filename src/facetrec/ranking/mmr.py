"""Maximal Marginal Relevance (Carbonell & Goldstein, SIGIR 1998).

Each slot takes the candidate maximising ``lam * score_i - (1 - lam) * max_{j in S} sim_ij``
over the items ``S`` already chosen: ``lam = 1`` is pure relevance, ``lam = 0`` pure novelty
with respect to the list so far. One vectorised update per output slot, O(n m) after the
similarity matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from facetrec.errors import ConfigError, DataError
from facetrec.ranking.retrieval import CandidatePool


def check_lam(lam: float, name: str = "lam") -> float:
    """``lam`` as a float in [0, 1], or a ConfigError naming it."""
    if isinstance(lam, bool) or not isinstance(lam, int | float | np.floating) or not 0.0 <= lam <= 1.0:
        raise ConfigError(f"{name}: must be a number in [0, 1] (1 = pure relevance), got {lam!r}")
    return float(lam)


def check_scores_sim(scores: np.ndarray, sim: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 copies of ``scores`` [m] and ``sim`` [m, m]; ``n`` must be >= 1."""
    scores = np.asarray(scores, dtype=np.float64)
    sim = np.asarray(sim, dtype=np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise DataError(f"scores: expected a finite 1-d array, got shape {scores.shape}")
    if sim.shape != (len(scores), len(scores)) or not np.isfinite(sim).all():
        raise DataError(f"sim: expected a finite [{len(scores)}, {len(scores)}] matrix, got shape {sim.shape}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise DataError(f"n: must be a positive integer, got {n!r}")
    return scores, sim


def greedy_pick(gain: np.ndarray, scores: np.ndarray) -> int:
    """The candidate a greedy re-ranker takes next: the highest ``gain`` (chosen ones set to
    -inf), ties (within rounding) going to the more relevant ``scores``, so lists are stable."""
    best = gain.max()
    ties = gain >= best - 1e-12 * max(1.0, abs(best))
    return int(np.argmax(np.where(ties, scores, -np.inf)))


def mmr(scores: np.ndarray, sim: np.ndarray, lam: float, n: int) -> np.ndarray:
    """Positions of the ``min(n, m)`` items chosen by MMR, in the order chosen.

    ``scores`` [m] relevance (best on the same scale as ``sim``, e.g. scaled to [0, 1]);
    ``sim`` [m, m] item similarity. Ties in the MMR value go to the more relevant item, then
    to the lower position, so with ``lam = 0`` the first pick is the most relevant item.
    """
    scores, sim = check_scores_sim(scores, sim, n)
    return mmr_rows(scores, lambda j: sim[j], check_lam(lam), n)


def mmr_rows(scores: np.ndarray, row: Callable[[int], np.ndarray], lam: float, n: int) -> np.ndarray:
    """:func:`mmr` reading only the similarity rows of chosen items, ``row(j)`` -> [m]: O(n m d)
    from item vectors instead of O(m^2 d) for a full similarity matrix."""
    m = len(scores)
    chosen = np.zeros(m, dtype=bool)
    max_sim = np.zeros(m)  # max similarity to the chosen items (0 before the first pick)
    order = np.empty(min(n, m), dtype=np.int64)
    for t in range(len(order)):
        gain = lam * scores - (1.0 - lam) * max_sim if t else lam * scores
        gain[chosen] = -np.inf
        pick = greedy_pick(gain, scores)
        order[t] = pick
        chosen[pick] = True
        if t + 1 < len(order):
            max_sim = np.maximum(max_sim, row(pick))
    return order


class MMRReranker:
    """MMR over a :class:`CandidatePool`: relevance scaled to [0, 1] in the pool, cosine similarity."""

    def __init__(self, lam: float = 0.5) -> None:
        self.lam = check_lam(lam)

    def __repr__(self) -> str:
        return f"MMRReranker(lam={self.lam})"

    def rerank(self, pool: CandidatePool, n: int) -> np.ndarray:
        """Positions into ``pool`` of the chosen items, best first."""
        v = np.asarray(pool.vectors, dtype=np.float64)
        return mmr_rows(pool.unit_relevance(), lambda j: v @ v[j], self.lam, n)
