"""Determinantal point process re-ranking with fast greedy MAP inference.

Chen, Zhang & Zhou, "Fast Greedy MAP Inference for Determinantal Point Process to Improve
Recommendation Diversity", NeurIPS 2018 (Algorithm 1). The kernel is
``L = diag(q) (S + eps I) diag(q)`` with cosine similarity ``S`` and quality
``q_i = exp(alpha r_i)``, ``alpha = lam / (2 (1 - lam))``, so that
``log det L_Y = lam / (1 - lam) * sum_{i in Y} r_i + log det (S + eps I)_Y``: the paper's
trade-off ``lam * relevance + (1 - lam) * diversity`` up to a factor. Greedy MAP keeps an
incremental Cholesky factor of the chosen set, so choosing ``n`` of ``m`` items costs
O(m n^2) once the kernel rows are known. The small ``eps`` keeps ``L`` positive definite:
once the similarity's rank is exhausted, the remaining slots go to the most relevant items.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from facetrec.errors import DataError
from facetrec.ranking.mmr import check_lam, check_scores_sim
from facetrec.ranking.retrieval import CandidatePool

EPS = 1e-6
"""Diagonal jitter added to the similarity matrix."""


def dpp_greedy(kernel: np.ndarray, n: int) -> np.ndarray:
    """Greedy MAP for a DPP with PSD ``kernel`` [m, m]: positions of ``min(n, m)`` items in the
    order chosen, each step maximising ``log det kernel[Y + {i}]`` (ties: the lower position).

    If the kernel's rank runs out before ``n`` items (every remaining gain <= 0), the rest
    follow in order of their diagonal entries.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    m = kernel.shape[0]
    if kernel.shape != (m, m) or not np.isfinite(kernel).all():
        raise DataError(f"kernel: expected a finite square matrix, got shape {kernel.shape}")
    return dpp_greedy_rows(kernel.diagonal().copy(), lambda j: kernel[j], n)


def dpp_greedy_rows(diagonal: np.ndarray, row: Callable[[int], np.ndarray], n: int) -> np.ndarray:
    """:func:`dpp_greedy` reading only the kernel's ``diagonal`` [m] and the rows ``row(j)`` of
    chosen items: O(m n^2) plus n row computations, never the full [m, m] kernel."""
    m = len(diagonal)
    k = min(int(n), m)
    cis = np.zeros((k, m))
    d2 = np.asarray(diagonal, dtype=np.float64).copy()  # squared Cholesky gain of adding each item
    chosen = np.zeros(m, dtype=bool)
    order: list[int] = []
    j = int(np.argmax(d2))
    while True:
        if d2[j] <= 0:
            rest = np.flatnonzero(~chosen)
            rest = rest[np.lexsort((rest, -np.asarray(diagonal)[rest]))]
            order.extend(rest[: k - len(order)].tolist())
            break
        order.append(j)
        chosen[j] = True
        t = len(order) - 1
        if len(order) == k:
            break
        e = (row(j) - cis[:t, j] @ cis[:t]) / np.sqrt(d2[j])
        cis[t] = e
        d2 = d2 - e * e
        d2[chosen] = -np.inf
        j = int(np.argmax(d2))
    return np.asarray(order, dtype=np.int64)


def _quality(scores: np.ndarray, lam: float) -> np.ndarray:
    alpha = lam / (2.0 * (1.0 - lam)) if lam < 1 else np.inf
    shifted = np.asarray(scores, dtype=np.float64) - np.max(scores)
    return np.exp(alpha * shifted) if np.isfinite(alpha) else (shifted == 0).astype(np.float64)


def dpp_kernel(scores: np.ndarray, sim: np.ndarray, lam: float, eps: float = EPS) -> np.ndarray:
    """``diag(q) (sim + eps I) diag(q)`` with ``q = exp(alpha (scores - max))``, alpha = lam / (2 (1 - lam)).

    Shifting by the maximum leaves the greedy choices unchanged and keeps ``q <= 1``.
    """
    q = _quality(scores, check_lam(lam))
    return q[:, None] * (sim + eps * np.eye(len(q))) * q[None, :]


def dpp(scores: np.ndarray, sim: np.ndarray, lam: float, n: int) -> np.ndarray:
    """Positions of the ``min(n, m)`` items greedy DPP MAP chooses, in the order chosen.

    ``scores`` [m] relevance (scaled to [0, 1] for a scale-free ``lam``), ``sim`` [m, m] a PSD
    similarity (cosine of item vectors). ``lam = 1`` returns the items by relevance.
    """
    scores, sim = check_scores_sim(scores, sim, n)
    lam = check_lam(lam)
    if lam == 1.0:
        return np.lexsort((np.arange(len(scores)), -scores))[: min(n, len(scores))]
    return dpp_greedy(dpp_kernel(scores, sim, lam), n)


class DPPReranker:
    """Greedy DPP over a :class:`CandidatePool`: relevance scaled to [0, 1], cosine similarity."""

    def __init__(self, lam: float = 0.5) -> None:
        self.lam = check_lam(lam)

    def __repr__(self) -> str:
        return f"DPPReranker(lam={self.lam})"

    def rerank(self, pool: CandidatePool, n: int) -> np.ndarray:
        """Positions into ``pool`` of the chosen items, best first."""
        rel = pool.unit_relevance()
        if self.lam == 1.0 or not len(rel):
            return np.lexsort((np.arange(len(rel)), -rel))[: min(n, len(rel))]
        v = np.asarray(pool.vectors, dtype=np.float64)
        q = _quality(rel, self.lam)
        diagonal = q * q * (np.einsum("ij,ij->i", v, v) + EPS)

        def row(j: int) -> np.ndarray:
            r = q[j] * q * (v @ v[j])
            r[j] += q[j] * q[j] * EPS
            return r

        return dpp_greedy_rows(diagonal, row, n)
