"""Interest-proportional quotas: the list's slots are split across interests by interest weight.

Slots are apportioned by the largest-remainder (Hamilton) method; each interest then fills its
slots with its most relevant candidates, slots an interest cannot fill go to the most relevant
remaining candidates, and the chosen items are shown by relevance. ``lam`` blends the target
split between the one pure relevance would give (``lam = 1``: no change) and the interest
weights (``lam = 0``: strict quotas).
"""

from __future__ import annotations

import numpy as np

from facetrec.errors import DataError
from facetrec.ranking.mmr import check_lam
from facetrec.ranking.retrieval import CandidatePool


def largest_remainder(weights: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` slots in proportion to ``weights`` (>= 0, not all 0): int64 counts summing to ``n``.

    Each share gets the floor of its exact quota; the slots left go to the largest remainders
    (ties: the larger weight, then the lower index).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not w.size or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise DataError(f"weights: expected finite non-negative weights with a positive sum, got {w.tolist()}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise DataError(f"n: must be a non-negative integer, got {n!r}")
    exact = w / w.sum() * n
    counts = np.floor(exact + 1e-9).astype(np.int64)
    left = n - int(counts.sum())
    if left > 0:
        remainder = np.round(exact - counts, 9)  # float noise must not decide a tie
        order = np.lexsort((np.arange(len(w)), -w, -remainder))
        counts[order[:left]] += 1
    return counts


def quotas(scores: np.ndarray, interest: np.ndarray, weights: np.ndarray, lam: float, n: int) -> np.ndarray:
    """Positions of the ``min(n, m)`` chosen candidates, by relevance (ties: lower position).

    ``scores`` [m] relevance, ``interest`` [m] the interest index of each candidate,
    ``weights`` [k] interest weights. The target split of the slots is the largest-remainder
    apportionment of ``lam * (split of the relevance top n) + (1 - lam) * weights``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    interest = np.asarray(interest, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    lam = check_lam(lam)
    m = len(scores)
    if interest.shape != (m,) or not np.isfinite(scores).all():
        raise DataError(f"scores and interest: expected finite [m] arrays of one length, got {scores.shape}, "
                        f"{interest.shape}")  # fmt: skip
    if m and (interest.min() < 0 or interest.max() >= len(weights)):
        raise DataError(f"interest: values must be in 0..{len(weights) - 1} (one per weight)")
    n_out = min(int(n), m)
    by_relevance = np.lexsort((np.arange(m), -scores))
    if n_out == 0:
        return by_relevance[:0]
    natural = np.bincount(interest[by_relevance[:n_out]], minlength=len(weights)) / n_out
    share = weights / weights.sum() if weights.sum() > 0 else np.full(len(weights), 1.0 / len(weights))
    target = largest_remainder(lam * natural + (1.0 - lam) * share, n_out)
    # rank of each candidate within its interest, in relevance order
    ranked_interest = interest[by_relevance]
    within = np.empty(m, dtype=np.int64)
    sort_by_interest = np.argsort(ranked_interest, kind="stable")
    starts = np.searchsorted(ranked_interest[sort_by_interest], np.arange(len(weights)))
    within[sort_by_interest] = np.arange(m) - starts[ranked_interest[sort_by_interest]]
    take = within < target[ranked_interest]
    chosen = by_relevance[take]
    if len(chosen) < n_out:  # interests short of candidates: fill with the best of the rest
        chosen = np.concatenate([chosen, by_relevance[~take][: n_out - len(chosen)]])
    return chosen[np.lexsort((chosen, -scores[chosen]))]


class QuotaReranker:
    """Interest quotas over a :class:`CandidatePool` (its ``interest`` and ``weights``)."""

    def __init__(self, lam: float = 0.0) -> None:
        self.lam = check_lam(lam)

    def __repr__(self) -> str:
        return f"QuotaReranker(lam={self.lam})"

    def rerank(self, pool: CandidatePool, n: int) -> np.ndarray:
        """Positions into ``pool`` of the chosen items, by relevance."""
        return quotas(pool.relevance, pool.interest, pool.weights, self.lam, n)
