"""Exposure-aware re-ranking: xQuAD over item groups (Santos et al., WWW 2010), as Abdollahpouri
et al. (FLAIRS 2019) use it against popularity bias.

A recommender trained on clicks shows the few most popular items to everyone. xQuAD treats
item groups as the "aspects" a list should cover in target proportions ``p``: each slot takes
the candidate maximising

    lam * rel_i + (1 - lam) * sum_c p_c * M_ic * (1 - s_c(S))

where ``M_ic`` is item i's share of group c (rows sum to 1, or 0 without a group), ``p_c`` the
share group c should get, and ``s_c(S)`` group c's share of the list so far (0 for an
empty list): the "smooth" xQuAD, whose coverage bonus shrinks as a group fills its share rather
than vanishing after one item. ``lam = 1`` is pure relevance, as for every re-ranker here; at
``lam = 0`` the list's group mix approaches ``p``.

The Ranker's groups are popularity buckets by default (head: the most popular items, by users,
that hold 20 % of the fitted events' popularity, :func:`facetrec.evaluation.metrics.head_items`,
the very head the long-tail share metric counts; the rest is the long tail) with ``p`` their
share of the catalogue, or the categories of the user's history with ``p`` their mix in it.
"""

from __future__ import annotations

import numpy as np

from facetrec.errors import DataError
from facetrec.ranking.mmr import check_lam, greedy_pick
from facetrec.ranking.retrieval import CandidatePool

EXPOSURE_GROUPS = ("popularity", "category")
"""Values of ``RankConfig.exposure_groups``."""


def xquad(scores: np.ndarray, groups: np.ndarray, target: np.ndarray, lam: float, n: int) -> np.ndarray:
    """Positions of the ``min(n, m)`` items chosen greedily by smooth xQuAD, in the order chosen.

    ``scores`` [m] relevance (scaled to [0, 1] for a scale-free ``lam``); ``groups`` [m, G] each
    candidate's group membership (rows sum to 1, or 0 without a group); ``target`` [G] the
    share each group should get (normalised here). Ties go to the more relevant item, then to the
    lower position, so ``lam = 1`` gives the relevance order exactly.
    """
    scores = np.asarray(scores, dtype=np.float64)
    member = np.asarray(groups, dtype=np.float64)
    p = np.asarray(target, dtype=np.float64)
    lam = check_lam(lam)
    m = len(scores)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise DataError(f"scores: expected a finite 1-d array, got shape {scores.shape}")
    if member.shape != (m, len(p)) or not np.isfinite(member).all() or (member < 0).any():
        raise DataError(f"groups: expected non-negative shape ({m}, {len(p)}) matching scores and target, "
                        f"got {member.shape}")  # fmt: skip
    if not np.isfinite(p).all() or (p < 0).any():
        raise DataError("target: expected a finite non-negative group distribution")
    n_out = min(int(n), m)
    if p.sum() <= 0 or lam == 1.0:
        return np.lexsort((np.arange(m), -scores))[:n_out]
    p = p / p.sum()
    chosen = np.zeros(m, dtype=bool)
    mass = np.zeros(len(p))  # group mass of the list so far
    order = np.empty(n_out, dtype=np.int64)
    for t in range(n_out):
        uncovered = 1.0 - mass / t if t else np.ones(len(p))
        gain = lam * scores + (1.0 - lam) * (member @ (p * uncovered))
        gain[chosen] = -np.inf
        pick = greedy_pick(gain, scores)
        order[t] = pick
        chosen[pick] = True
        mass += member[pick]
    return order


class XQuADReranker:
    """xQuAD over a :class:`CandidatePool` whose ``categories`` hold the candidates' item groups
    and ``target`` the share each should get (the Ranker fills both); without them it
    leaves the relevance order unchanged."""

    def __init__(self, lam: float = 0.5) -> None:
        self.lam = check_lam(lam)

    def __repr__(self) -> str:
        return f"XQuADReranker(lam={self.lam})"

    def rerank(self, pool: CandidatePool, n: int) -> np.ndarray:
        """Positions into ``pool`` of the chosen items, in the order chosen."""
        rel = pool.unit_relevance()
        if pool.categories is None or pool.target is None:
            return np.lexsort((np.arange(len(rel)), -rel))[: min(n, len(rel))]
        return xquad(rel, pool.categories, pool.target, self.lam, n)
