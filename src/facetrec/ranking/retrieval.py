"""Candidate retrieval with faiss: each interest vector fetches its own nearest items, then merge.

The score of item i under interest j is the inner product ``dot(interest_j, item_vector_i)``.
Exact search (``IndexFlatIP``) is the default; approximate indexes are for catalogues where a
full scan per request is too slow: HNSW (a graph, the best recall per microsecond while its
links fit in memory), IVF (inverted lists) and IVF-PQ (inverted lists of product-quantised codes,
16 bytes an item at 64 dimensions, for catalogues whose HNSW graph would not fit). Filters reach
faiss as a bitmap selector, so a request never needs to over-fetch to survive them.

:func:`merge_interests` turns an item's per-interest terms (``UserState.interest_scores``) into
one score, by the mixture's log-sum-exp or the best single interest, and names the interest that
contributes most. :class:`CandidatePool` is what every re-ranker reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from facetrec.errors import ConfigError, DataError

INDEX_KINDS = ("auto", "flat", "ivf", "hnsw", "ivfpq")
"""Values of ``RankConfig.retrieval``."""

PQ_MIN_ITEMS = 256 * 39
"""Fewest items IVF-PQ trains on: 8-bit codebooks have 256 centroids and faiss wants 39 points each."""


def choose_index_kind(kind: str, n_items: int, flat_max_items: int, hnsw_max_items: int | None = None) -> str:
    """The concrete index for ``kind``: "auto" is exact up to ``flat_max_items`` items, HNSW up
    to ``hnsw_max_items`` (None: no limit) and IVF-PQ above, where HNSW's float vectors and links
    (about 0.5 GB per million 64-d items) would crowd memory."""
    if kind not in INDEX_KINDS:
        raise ConfigError(f"retrieval must be one of {', '.join(map(repr, INDEX_KINDS))}, got {kind!r}")
    if kind != "auto":
        return kind
    if n_items <= flat_max_items:
        return "flat"
    return "hnsw" if hnsw_max_items is None or n_items <= hnsw_max_items else "ivfpq"


def pq_subquantizers(dim: int, requested: int = 0) -> int:
    """Sub-vectors IVF-PQ splits an item into: ``requested``, or by default one per 4 dimensions
    (the largest divisor of ``dim`` at most ``dim / 4``, 16 codes of one byte at 64 dimensions)."""
    if requested:
        if dim % requested:
            raise ConfigError(f"ivfpq_m: {requested} sub-quantizers must divide the vector dimension {dim}")
        return requested
    return max(m for m in range(1, max(1, dim // 4) + 1) if dim % m == 0)


class VectorIndex:
    """A faiss inner-product index over item vectors, searched with an optional allowed-item mask.

    ``kind`` is "flat" (exact), "ivf" (inverted lists, ``nlist`` cells, ``nprobe`` searched),
    "hnsw" (graph with ``m`` links, ``ef_search`` breadth) or "ivfpq" (IVF over product-quantised
    codes with ``pq_m`` sub-quantizers; ``refine`` times ``k`` candidates are fetched by their
    approximate scores and re-scored exactly). IVF trains its k-means on the item vectors (at
    most ``TRAIN_SAMPLE`` of them) with ``seed``.
    """

    TRAIN_SAMPLE = 262_144
    """Item vectors IVF's k-means and PQ's codebooks train on; more add build time, not recall."""

    def __init__(
        self,
        vectors: np.ndarray,
        kind: str = "flat",
        *,
        nlist: int | None = None,
        nprobe: int = 16,
        m: int = 32,
        ef_search: int = 128,
        pq_m: int = 0,
        refine: int = 4,
        seed: int = 0,
    ) -> None:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        self.kind, self.n_items, self.dim = kind, n, d
        self.vectors = vectors
        self.nprobe, self.ef_search, self.refine = nprobe, ef_search, max(1, int(refine))
        if kind == "flat":
            index: Any = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            # HNSW navigates inner-product spaces poorly; the MIPS -> L2 reduction of Bachrach et al.
            # (RecSys 2014) appends sqrt(max|x|^2 - |x|^2) to each item and 0 to each query, so the
            # nearest neighbour in L2 is the best inner product (recall@50 0.80 -> 0.89 in our tests)
            sq = np.einsum("ij,ij->i", vectors, vectors)
            vectors = np.hstack([vectors, np.sqrt(np.maximum(sq.max() - sq, 0.0))[:, None]]).astype(np.float32)
            index = faiss.IndexHNSWFlat(d + 1, m)
            index.hnsw.efConstruction = max(64, 2 * m)
        elif kind in ("ivf", "ivfpq"):
            nlist = nlist or max(1, min(n // 39, int(4 * math.sqrt(n))))  # faiss wants >= 39 points per cell
            self._quantizer = faiss.IndexFlatIP(d)
            if kind == "ivf":
                index = faiss.IndexIVFFlat(self._quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            else:
                if n < PQ_MIN_ITEMS:
                    raise ConfigError(
                        f"retrieval 'ivfpq' needs at least {PQ_MIN_ITEMS} items to train its codebooks, got {n}; "
                        "use 'hnsw' or 'flat' for a catalogue this small"
                    )
                index = faiss.IndexIVFPQ(self._quantizer, d, nlist, pq_subquantizers(d, pq_m), 8,
                                         faiss.METRIC_INNER_PRODUCT)  # fmt: skip
                index.pq.cp.seed = seed
            index.cp.seed = seed
            sample = vectors
            if n > self.TRAIN_SAMPLE:
                sample = vectors[np.sort(np.random.default_rng(seed).choice(n, self.TRAIN_SAMPLE, replace=False))]
            index.train(sample)
        else:
            raise ConfigError(f"index kind must be 'flat', 'ivf', 'hnsw' or 'ivfpq', got {kind!r}")
        index.add(vectors)
        self.index = index

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items per query row: (scores [q, k] float32, idx [q, k] int64), best first.

        ``allowed`` is a boolean mask [n_items]; items outside it are never returned. Slots
        that could not be filled (fewer allowed items, or an approximate search that ran dry)
        hold idx -1 and score -inf.
        """
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(int(k), self.n_items))
        fetch = min(self.n_items, k * self.refine) if self.kind == "ivfpq" else k
        search_queries = queries
        if self.kind == "hnsw":
            search_queries = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
        params = None
        bitmap = None
        if allowed is not None and not allowed.all():
            bitmap = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(self.n_items, faiss.swig_ptr(bitmap))
            params = self._params(selector)
        elif self.kind != "flat":
            params = self._params(None)
        scores, idx = self.index.search(search_queries, fetch, params=params)
        del bitmap  # kept alive until the search above has returned
        if self.kind != "flat":  # exact inner products (HNSW returned L2 distances, PQ estimates), re-sorted
            scores = np.einsum("qd,qkd->qk", queries, self.vectors[np.maximum(idx, 0)])
            scores = np.where(idx >= 0, scores, -np.inf)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            scores, idx = np.take_along_axis(scores, order, 1), np.take_along_axis(idx, order, 1)
        scores = np.where(idx >= 0, scores, -np.inf).astype(np.float32)
        return scores, idx

    def _params(self, selector: Any) -> Any:
        import faiss

        extra = {} if selector is None else {"sel": selector}
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=self.ef_search, **extra)
        if self.kind in ("ivf", "ivfpq"):
            return faiss.SearchParametersIVF(nprobe=self.nprobe, **extra)
        return faiss.SearchParameters(**extra)


MERGES = ("logsumexp", "max")
"""Values of ``RankConfig.interest_merge``."""


def merge_interests(terms: np.ndarray, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """One score per item from its per-interest terms [k, m], and the interest that contributes
    most to it (ties: the lower index). "logsumexp" is the mixture the soft-routed facet model is
    trained on (log of the sum of its K routed probabilities); "max" is the best single interest.
    Every list (CLI, service, evaluation) merges interests with this; only the facet model's
    training validation reads its own full score matrix."""
    terms = np.asarray(terms, dtype=np.float64)
    if terms.ndim != 2 or terms.shape[0] < 1:
        raise DataError(f"merge_interests: terms must be [k >= 1, m], got shape {terms.shape}")
    interest = np.argmax(terms, axis=0).astype(np.int32)
    if rule == "max":
        return terms.max(axis=0), interest
    if rule == "logsumexp":
        top = terms.max(axis=0)
        return top + np.log(np.exp(terms - top).sum(axis=0)), interest
    raise ConfigError(f"interest merge must be one of {', '.join(map(repr, MERGES))}, got {rule!r}")


def top_allowed(scores: np.ndarray, allowed: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` best finite scores among allowed items, best first (ties: lower index)."""
    candidates = np.flatnonzero(allowed & np.isfinite(scores))
    if candidates.size > m:
        part = np.argpartition(-scores[candidates], m - 1)[:m]
        candidates = candidates[part]
    return candidates[np.lexsort((candidates, -scores[candidates]))]


@dataclass(frozen=True, eq=False)
class CandidatePool:
    """The candidates one request re-ranks, aligned row by row.

    ``idx`` item indices; ``relevance`` their (boosted) relevance in the scorer's units;
    ``interest`` the interest that produced each; ``weights`` [k] the interests' weights;
    ``vectors`` unit-norm similarity vectors [m, d] (cosine = dot product); ``categories``
    [m, C] each item's category distribution (rows sum to 1, or 0 without a category) and
    ``target`` [C] the user's category distribution, both None when unknown.
    """

    idx: np.ndarray
    relevance: np.ndarray
    interest: np.ndarray
    weights: np.ndarray
    vectors: np.ndarray
    categories: np.ndarray | None = None
    target: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.idx)

    def unit_relevance(self) -> np.ndarray:
        """Relevance min-max scaled to [0, 1] within the pool (all 1 when every score is equal), so
        that a trade-off weight means the same for any scorer's scale."""
        rel = np.asarray(self.relevance, dtype=np.float64)
        if not rel.size:
            return rel
        span = rel.max() - rel.min()
        return (rel - rel.min()) / span if span > 0 else np.ones_like(rel)

    def similarity(self) -> np.ndarray:
        """Cosine similarity [m, m] of the pool's items (float64)."""
        v = np.asarray(self.vectors, dtype=np.float64)
        return v @ v.T


def check_order(order: np.ndarray, m: int, n: int) -> np.ndarray:
    """``order`` as int64 positions, checked to be ``min(n, m)`` distinct positions into a pool of ``m``."""
    order = np.asarray(order, dtype=np.int64)
    if len(order) != min(n, m) or len(np.unique(order)) != len(order) or (order.size and order.max() >= m):
        raise DataError(f"re-ranker returned an invalid order {order[:10].tolist()} for a pool of {m}, n={n}")
    return order
