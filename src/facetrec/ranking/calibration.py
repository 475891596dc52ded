"""Calibrated recommendations (Steck, RecSys 2018): the list's category mix follows the user's.

Greedy maximisation of ``lam * sum_{i in S} r_i - (1 - lam) * KL(p || q~(S))`` where ``p`` is
the user's category distribution (from their history), ``q(S)`` the list's (each item's mass
split equally among its categories) and ``q~ = (1 - alpha) q + alpha p`` keeps the divergence
finite. This is Steck's objective with ``lam`` in place of his ``1 - lambda``, so that, as for
every re-ranker here, ``lam = 1`` is pure relevance. The KL is that of
:func:`facetrec.evaluation.metrics.calibration_kl`, so the metric reads what was optimised.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from facetrec.errors import DataError
from facetrec.ranking.mmr import check_lam
from facetrec.ranking.retrieval import CandidatePool


def category_distribution(
    item_categories: sp.csr_matrix, items: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """The category distribution [C] of ``items`` (weighted; each item's mass split over its
    categories); all zeros when none of them has a category."""
    rows = item_categories[np.asarray(items, dtype=np.int64)]
    counts = np.asarray(rows.sum(axis=1)).ravel()
    w = np.ones(len(counts)) if weights is None else np.asarray(weights, dtype=np.float64)
    per_item = np.divide(w, counts, out=np.zeros(len(counts)), where=counts > 0)
    mass = np.asarray(rows.T @ per_item).ravel()
    total = mass.sum()
    return mass / total if total > 0 else mass


def calibrate(
    scores: np.ndarray, item_dist: np.ndarray, target: np.ndarray, lam: float, n: int, alpha: float = 0.01
) -> np.ndarray:
    """Positions of the ``min(n, m)`` items chosen greedily, shown by relevance (ties: lower position).

    ``scores`` [m] relevance (scaled to [0, 1] for a scale-free ``lam``); ``item_dist`` [m, C]
    each candidate's category distribution (rows sum to 1, or 0 without a category);
    ``target`` [C] the user's distribution ``p``. Each step adds the candidate maximising the
    objective of the list so far plus it (ties: the more relevant, then the lower position).
    """
    scores = np.asarray(scores, dtype=np.float64)
    dist = np.asarray(item_dist, dtype=np.float64)
    p = np.asarray(target, dtype=np.float64)
    lam = check_lam(lam)
    m = len(scores)
    if dist.shape != (m, len(p)) or not np.isfinite(scores).all():
        raise DataError(f"item_dist: expected shape ({m}, {len(p)}) matching scores and target, got {dist.shape}")
    if not 0 < alpha <= 1:
        raise DataError(f"alpha: must be in (0, 1], got {alpha}")
    n_out = min(int(n), m)
    if p.sum() <= 0 or lam == 1.0:  # nothing to calibrate to (or nothing asked): relevance order
        return np.lexsort((np.arange(m), -scores))[:n_out]
    p = p / p.sum()
    support = p > 0
    p_s, dist_s = p[support], dist[:, support]
    row_mass = dist.sum(axis=1)
    chosen = np.zeros(m, dtype=bool)
    mass = np.zeros(len(p_s))  # category mass of the list so far, over the user's categories
    total = 0.0  # all category mass of the list so far
    for _ in range(n_out):
        q_total = total + row_mass
        q = np.divide(mass + dist_s, q_total[:, None], out=np.zeros_like(dist_s), where=q_total[:, None] > 0)
        kl = (p_s * np.log(p_s / ((1 - alpha) * q + alpha * p_s))).sum(axis=1)
        gain = lam * scores - (1.0 - lam) * kl
        gain[chosen] = -np.inf
        best = gain.max()
        ties = gain >= best - 1e-12 * max(1.0, abs(best))
        pick = int(np.argmax(np.where(ties, scores, -np.inf)))
        chosen[pick] = True
        mass += dist_s[pick]
        total += row_mass[pick]
    picked = np.flatnonzero(chosen)
    return picked[np.lexsort((picked, -scores[picked]))]


class CalibrationReranker:
    """Calibration over a :class:`CandidatePool` (its ``categories`` and ``target``); without
    categories or a target it leaves the relevance order unchanged."""

    def __init__(self, lam: float = 0.5, alpha: float = 0.01) -> None:
        self.lam = check_lam(lam)
        self.alpha = alpha

    def __repr__(self) -> str:
        return f"CalibrationReranker(lam={self.lam}, alpha={self.alpha})"

    def rerank(self, pool: CandidatePool, n: int) -> np.ndarray:
        """Positions into ``pool`` of the chosen items, by relevance."""
        rel = pool.unit_relevance()
        if pool.categories is None or pool.target is None:
            return np.lexsort((np.arange(len(rel)), -rel))[: min(n, len(rel))]
        return calibrate(rel, pool.categories, pool.target, self.lam, n, self.alpha)
