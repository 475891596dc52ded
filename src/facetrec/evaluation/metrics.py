"""Recommendation metrics as pure, vectorised functions over a whole batch of users.

Conventions shared by every function:

- ``ranked``: int array [n_users, K'] of item indices, best first. ``-1`` is an empty slot (it
  pads lists shorter than K'); it is never a hit and never an item, but keeps its position. An
  item repeated within the first ``k`` columns of a row is a DataError.
- ``k``: metrics @k read the first ``k`` columns; ``1 <= k <= K'`` or a DataError.
- ``relevant``: scipy.sparse (or dense) [n_users, n_items]; nonzero = a held-out target of that
  user. Row i describes the same user as row i of ``ranked``.
- ``item_categories`` / ``item_topics``: an int array [n_items] (one category per item, -1 =
  none) or a multi-hot [n_items, n_categories] matrix, of which only the nonzero pattern counts.
- Return values: a per-user float64 array [n_users], so callers can bootstrap intervals and run
  paired tests; inherently global metrics (auc, log_loss, rmse, mae, catalogue_coverage) return
  a float.
- NaN: a per-user value that is undefined is NaN, never a silent 0. Accuracy metrics are NaN for
  users with no relevant item (all of them, precision included, so every accuracy metric averages
  over the same users); diversity, novelty and popularity are NaN for lists with too few items.
  Aggregate with ``np.nanmean`` after counting the NaNs, or drop those users first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from facetrec.errors import DataError

FloatArray = npt.NDArray[np.float64]
Matrix = Any  # a scipy.sparse matrix/array or a dense 2-d array

__all__ = [
    "auc",
    "average_popularity",
    "average_precision",
    "calibration_kl",
    "catalogue_coverage",
    "category_coverage",
    "category_diversity",
    "exposure",
    "exposure_gini",
    "exposure_share",
    "f1",
    "head_items",
    "hit_rate",
    "interest_coverage",
    "intra_list_diversity",
    "log_loss",
    "long_tail_share",
    "mae",
    "mrr",
    "ndcg",
    "novelty",
    "popularity_buckets",
    "popularity_percentile",
    "precision",
    "recall",
    "rmse",
]


# --------------------------------------------------------------------------- validation


def _top(ranked: npt.ArrayLike, k: int, n_items: int, rows_of: tuple[str, int] | None = None) -> np.ndarray:
    """The first ``k`` columns of ``ranked`` as int64, checked for width, range and duplicates."""
    arr = np.asarray(ranked)
    if arr.ndim != 2:
        raise DataError(f"ranked: expected a 2-d array [n_users, K], got shape {arr.shape}; wrap one list as [x]")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"ranked: expected integer item indices (-1 = padding), got dtype {arr.dtype}")
    if rows_of is not None and arr.shape[0] != rows_of[1]:
        raise DataError(
            f"ranked has {arr.shape[0]} rows but {rows_of[0]} has {rows_of[1]}; row i of both must be the same user"
        )
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= arr.shape[1]:
        raise DataError(
            f"k: must be an integer from 1 to the width of ranked ({arr.shape[1]}), got {k!r}; "
            "pass longer lists or a smaller k"
        )
    top = arr[:, :k].astype(np.int64)
    bad = (top < -1) | (top >= n_items)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"ranked: value {top[r, c]} at row {r}, column {c} is outside the item range 0..{n_items - 1} "
            "(-1 marks padding); rank with the same item index as the other inputs"
        )
    srt = np.sort(top, axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    if dup.any():
        r, c = np.argwhere(dup)[0]
        raise DataError(
            f"ranked: row {r} lists item {srt[r, c + 1]} more than once in its first {k} columns; "
            "deduplicate each list, keeping the first occurrence"
        )
    return top


def _sparse(name: str, value: Matrix, shape: tuple[int | None, int | None] = (None, None)) -> sp.csr_matrix:
    """``value`` as a canonical float64 csr copy; NaN, inf and negative values are DataErrors."""
    arr = value if sp.issparse(value) else np.asarray(value)
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 2-d matrix, got shape {arr.shape}")
    try:
        m = sp.csr_matrix(arr, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: expected a numeric matrix ({exc})") from exc
    for axis, (want, got) in enumerate(zip(shape, m.shape, strict=True)):
        if want is not None and want != got:
            raise DataError(
                f"{name}: shape {m.shape} does not match the other inputs (dimension {axis} should be {want}); "
                "check that users and items are indexed the same way everywhere"
            )
    m.sum_duplicates()
    if not np.isfinite(m.data).all():
        raise DataError(f"{name}: contains {int((~np.isfinite(m.data)).sum())} NaN or infinite values; drop them")
    if (m.data < 0).any():
        raise DataError(f"{name}: contains {int((m.data < 0).sum())} negative values; weights must be >= 0")
    m.eliminate_zeros()
    return m


def _categories(name: str, value: Matrix, n_categories: int | None = None) -> sp.csr_matrix:
    """An int array [n_items] (-1 = none) or a multi-hot matrix as a binary csr [n_items, n_categories]."""
    if not sp.issparse(value) and np.asarray(value).ndim == 1:
        arr = np.asarray(value)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{name}: a 1-d array must hold integer category indices, got dtype {arr.dtype}")
        width = int(arr.max()) + 1 if arr.size else 0
        if arr.size and arr.min() < -1:
            raise DataError(f"{name}: category index {int(arr.min())} is invalid; use -1 for 'no category'")
        if n_categories is not None:
            if width > n_categories:
                raise DataError(f"{name}: category index {width - 1} is outside 0..{n_categories - 1}")
            width = n_categories
        has = np.flatnonzero(arr >= 0)
        return sp.csr_matrix((np.ones(has.size), (has, arr[has])), shape=(arr.size, width))
    m = _sparse(name, value, (None, n_categories))
    m.data[:] = 1.0
    return m


def _vector(name: str, value: npt.ArrayLike, n: int | None = None, finite: bool = True) -> FloatArray:
    """A 1-d float64 array; NaN (and, if ``finite``, inf) is a DataError naming ``name``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: expected numbers ({exc})") from exc
    if arr.ndim != 1:
        raise DataError(f"{name}: expected a 1-d array, got shape {arr.shape}")
    if n is not None and arr.size != n:
        raise DataError(f"{name}: length {arr.size} does not match the other input's length {n}")
    bad = np.isnan(arr) | (~np.isfinite(arr) if finite else False)
    if bad.any():
        raise DataError(
            f"{name}: {int(bad.sum())} NaN/infinite values (first at position {int(np.flatnonzero(bad)[0])}); "
            "drop or impute them first"
        )
    return arr


def _labels(value: npt.ArrayLike, n: int) -> FloatArray:
    y = _vector("labels", value, n)
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError(f"labels: must be 0/1 or bool, got values {np.unique(y)[:5].tolist()}...")
    return y


def _popularity(value: npt.ArrayLike) -> FloatArray:
    pop = _vector("item_popularity", value)
    if (pop < 0).any():
        raise DataError(f"item_popularity: {int((pop < 0).sum())} negative counts; pass users per item (>= 0)")
    return pop


# --------------------------------------------------------------------------- shared pieces


def _ratio(num: np.ndarray, den: np.ndarray) -> FloatArray:
    """``num / den`` with NaN wherever ``den`` is 0 (an undefined per-user value), without warnings."""
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=np.asarray(den) > 0)
    return out


def _membership(top: np.ndarray, n_items: int, weights: np.ndarray | None = None) -> sp.csr_matrix:
    """The [n_users, n_items] matrix with ``weights[j]`` (default 1) where a list holds an item at position j."""
    mask = top >= 0
    data = np.ones(int(mask.sum())) if weights is None else np.broadcast_to(weights, top.shape)[mask]
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))])
    return sp.csr_matrix((data, top[mask], indptr), shape=(top.shape[0], n_items))


def _values_at(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``m[rows, cols]`` elementwise (0 where nothing is stored), by binary search on sorted keys."""
    coo = m.tocoo()
    keys = coo.row.astype(np.int64) * m.shape[1] + coo.col
    order = np.argsort(keys, kind="stable")
    keys, vals = keys[order], coo.data[order]
    if not keys.size:
        return np.zeros(np.shape(rows))
    q = rows.astype(np.int64) * m.shape[1] + cols
    pos = np.minimum(np.searchsorted(keys, q), keys.size - 1)
    return np.where(keys[pos] == q, vals[pos], 0.0)


def _hits(ranked: npt.ArrayLike, k: int, relevant: Matrix) -> tuple[np.ndarray, FloatArray]:
    """Boolean hits [n_users, k] and the number of relevant items per user."""
    rel = _sparse("relevant", relevant)
    n_users, n_items = rel.shape
    top = _top(ranked, k, n_items, ("relevant", n_users))
    rows = np.broadcast_to(np.arange(n_users)[:, None], top.shape)
    hits = (top >= 0) & (_values_at(rel, rows, np.maximum(top, 0)) != 0)
    return hits, np.diff(rel.indptr).astype(np.float64)


def _row_mean(values: np.ndarray, mask: np.ndarray) -> FloatArray:
    """Mean of ``values`` over the ``mask``-ed entries of each row; NaN for empty rows."""
    return _ratio(np.where(mask, values, 0.0).sum(axis=1), mask.sum(axis=1).astype(np.float64))


def _discounts(k: int) -> FloatArray:
    return 1.0 / np.log2(np.arange(2, k + 2))


# --------------------------------------------------------------------------- accuracy @k


def hit_rate(ranked: npt.ArrayLike, k: int, relevant: Matrix) -> FloatArray:
    """1 if any of the first k items is relevant, else 0 (HR@k)."""
    hits, n_rel = _hits(ranked, k, relevant)
    return np.where(n_rel > 0, hits.any(axis=1), np.nan)


def recall(ranked: npt.ArrayLike, k: int, relevant: Matrix) -> FloatArray:
    """Hits in the first k over the number of relevant items (Recall@k, not capped at k)."""
    hits, n_rel = _hits(ranked, k, relevant)
    return _ratio(hits.sum(axis=1), n_rel)


def precision(ranked: npt.ArrayLike, k: int, relevant: Matrix) -> FloatArray:
    """Hits in the first k over k (Precision@k): a list shorter than k is penalised for the gap."""
    hits, n_rel = _hits(ranked, k, relevant)
    return np.where(n_rel > 0, hits.sum(axis=1) / k, np.nan)


def f1(ranked: npt.ArrayLike, k: int, relevant: Matrix) -> FloatArray:
    """Harmonic mean of precision@k and recall@k, i.e. 2 hits / (k + |relevant|); 0 without a hit."""
    hits, n_rel = _hits(ranked, k, relevant)
    return np.where(n_rel > 0, 2.0 * hits.sum(axis=1) / (k + n_rel), np.nan)


def ndcg(ranked: npt.ArrayLike, k: int, relevant: Matrix) -> FloatArray:
    """NDCG@k, binary gains and 1/log2(rank+1) discount (Järvelin & Kekäläinen, TOIS 2002).

    The ideal DCG places min(|relevant|, k) hits at the top, so a perfect list scores 1.
    """
    hits, n_rel = _hits(ranked, k, relevant)
    disc = _discounts(k)
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, k).astype(np.int64)]
    return _ratio(hits @ disc, ideal)


def mrr(ranked: npt.ArrayLike, k: int, relevant: Matrix) -> FloatArray:
    """Reciprocal rank of the first hit within the first k, 0 if there is none (MRR@k per user)."""
    hits, n_rel = _hits(ranked, k, relevant)
    rr = np.where(hits.any(axis=1), 1.0 / (hits.argmax(axis=1) + 1.0), 0.0)
    return np.where(n_rel > 0, rr, np.nan)


def average_precision(ranked: npt.ArrayLike, k: int, relevant: Matrix) -> FloatArray:
    """AP@k: the sum of precision@i at each hit rank i <= k, over min(|relevant|, k) (its mean is MAP@k)."""
    hits, n_rel = _hits(ranked, k, relevant)
    prec_at = np.cumsum(hits, axis=1) / np.arange(1.0, k + 1)
    return _ratio((prec_at * hits).sum(axis=1), np.minimum(n_rel, k))


# --------------------------------------------------------------------------- clicks and ratings


def _average_ranks(x: FloatArray) -> FloatArray:
    """1-based ranks of ``x`` with tied values sharing their average rank."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    first = np.concatenate([[True], xs[1:] != xs[:-1]])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, x.size))
    ranks = np.empty(x.size)
    ranks[order] = (starts + (counts + 1) / 2.0)[np.cumsum(first) - 1]
    return ranks


def auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Global ROC AUC: the chance a random positive outscores a random negative, ties counting 1/2.

    Computed from average ranks (Mann-Whitney U / (n_pos n_neg)), O(n log n).
    """
    s = _vector("scores", scores, finite=False)
    y = _labels(labels, s.size) == 1
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise DataError(f"labels: AUC needs both classes, got {n_pos} positives and {n_neg} negatives")
    u = _average_ranks(s)[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def log_loss(probabilities: npt.ArrayLike, labels: npt.ArrayLike, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy (natural log); probabilities are clipped to [eps, 1 - eps]."""
    p = _vector("probabilities", probabilities)
    y = _labels(labels, p.size)
    if not p.size:
        raise DataError("probabilities: empty; log loss needs at least one prediction")
    if (p < 0).any() or (p > 1).any():
        raise DataError("probabilities: values must lie in [0, 1]; apply a sigmoid to raw scores first")
    if not 0 < eps < 0.5:
        raise DataError(f"eps: must be in (0, 0.5), got {eps}")
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _pair(pred: npt.ArrayLike, truth: npt.ArrayLike) -> FloatArray:
    p = _vector("pred", pred)
    t = _vector("truth", truth, p.size)
    if not p.size:
        raise DataError("pred: empty; an error metric needs at least one prediction")
    return p - t


def rmse(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Root mean squared error over all predictions."""
    return float(np.sqrt(np.mean(_pair(pred, truth) ** 2)))


def mae(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Mean absolute error over all predictions."""
    return float(np.mean(np.abs(_pair(pred, truth))))


# --------------------------------------------------------------------------- beyond accuracy @k


def _dissimilarity(top: np.ndarray, unit: np.ndarray | sp.csr_matrix, used_ok: np.ndarray, name: str) -> FloatArray:
    """1 - mean pairwise cosine within each list, given unit-norm item rows.

    For unit vectors the sum over ordered pairs i != j of u_i.u_j is ||sum u||^2 - m, so no
    [n_users, k, k] Gram tensor is needed: the cost is one sparse-dense product.
    """
    bad = (top >= 0) & ~used_ok[np.maximum(top, 0)]
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"{name}: item {top[r, c]} (row {r} of ranked) has no vector/category, so its similarity is undefined; "
            "give every listed item one (e.g. an 'unknown' category)"
        )
    a = _membership(top, unit.shape[0])
    s = a @ unit
    sq = np.asarray(s.multiply(s).sum(axis=1)).ravel() if sp.issparse(s) else np.einsum("ij,ij->i", s, s)
    m = np.diff(a.indptr).astype(np.float64)
    return 1.0 - _ratio(sq - m, m * (m - 1))


def intra_list_diversity(ranked: npt.ArrayLike, k: int, item_vectors: npt.ArrayLike) -> FloatArray:
    """ILD@k: 1 - mean pairwise cosine similarity of the list's items (Ziegler et al., WWW 2005).

    0 for identical items, 1 for orthogonal ones (up to 2 for opposed ones); NaN for lists with
    fewer than 2 items. Zero vectors in a list are a DataError.
    """
    v = np.asarray(item_vectors, dtype=np.float64)
    if v.ndim != 2 or not np.isfinite(v).all():
        raise DataError(f"item_vectors: expected a finite 2-d array [n_items, d], got shape {v.shape}")
    top = _top(ranked, k, v.shape[0])
    norms = np.linalg.norm(v, axis=1)
    return _dissimilarity(top, v / np.where(norms > 0, norms, 1.0)[:, None], norms > 0, "item_vectors")


def category_diversity(ranked: npt.ArrayLike, k: int, item_categories: Matrix) -> FloatArray:
    """1 - mean pairwise cosine of the list items' binary category vectors.

    With one category per item this is the share of item pairs in different categories; with
    several, two items sharing one of two categories each count as 1/2 similar. NaN for lists
    with fewer than 2 items; a listed item with no category is a DataError.
    """
    c = _categories("item_categories", item_categories)
    top = _top(ranked, k, c.shape[0])
    counts = np.diff(c.indptr)
    unit = sp.diags(1.0 / np.sqrt(np.maximum(counts, 1))) @ c
    return _dissimilarity(top, unit.tocsr(), counts > 0, "item_categories")


def category_coverage(ranked: npt.ArrayLike, k: int, item_categories: Matrix) -> FloatArray:
    """Distinct categories in each list over the categories carried by at least one catalogue item."""
    c = _categories("item_categories", item_categories)
    top = _top(ranked, k, c.shape[0])
    n_cats = np.unique(c.indices).size
    if n_cats == 0:
        raise DataError("item_categories: no item has a category, so coverage is undefined")
    covered = _membership(top, c.shape[0]) @ c
    return np.diff(covered.tocsr().indptr) / n_cats


def catalogue_coverage(ranked: npt.ArrayLike, k: int, n_items: int) -> float:
    """Share of the n_items catalogue that appears in at least one list's first k items."""
    if isinstance(n_items, bool) or not isinstance(n_items, int | np.integer) or n_items < 1:
        raise DataError(f"n_items: must be a positive integer, got {n_items!r}")
    top = _top(ranked, k, int(n_items))
    return float(np.unique(top[top >= 0]).size / n_items)


def novelty(ranked: npt.ArrayLike, k: int, item_popularity: npt.ArrayLike, n_users: int) -> FloatArray:
    """Mean self-information -log2(p_i) of the list's items, p_i = popularity_i / n_users (Zhou et al., PNAS 2010).

    ``item_popularity`` counts the training users who interacted with each item. Popularity is
    clipped below at 1 (an unseen item is as novel as one seen once, log2(n_users) bits), so the
    log is finite. NaN for lists with no items.
    """
    pop = _popularity(item_popularity)
    if isinstance(n_users, bool) or not isinstance(n_users, int | np.integer) or n_users < 1:
        raise DataError(f"n_users: must be a positive integer, got {n_users!r}")
    if pop.size and pop.max() > n_users:
        raise DataError(f"item_popularity: max {pop.max()} exceeds n_users={n_users}; count distinct users per item")
    top = _top(ranked, k, pop.size)
    info = -np.log2(np.maximum(pop, 1.0) / n_users)
    return _row_mean(info[np.maximum(top, 0)], top >= 0)


def popularity_percentile(ranked: npt.ArrayLike, k: int, item_popularity: npt.ArrayLike) -> FloatArray:
    """Mean catalogue popularity percentile of the list's items: (rank - 1) / (n_items - 1), ties averaged.

    0 is the least popular item, 1 the most popular; all-equal popularity gives 0.5. NaN for
    lists with no items.
    """
    pop = _popularity(item_popularity)
    top = _top(ranked, k, pop.size)
    pct = (_average_ranks(pop) - 1.0) / (pop.size - 1) if pop.size > 1 else np.full(pop.size, 0.5)
    return _row_mean(pct[np.maximum(top, 0)], top >= 0)


def calibration_kl(
    ranked: npt.ArrayLike,
    k: int,
    item_categories: Matrix,
    history: Matrix,
    alpha: float = 0.01,
    rank_discount: bool = False,
) -> FloatArray:
    """Miscalibration KL(p || q~) per user, q~ = (1 - alpha) q + alpha p (Steck, RecSys 2018).

    p(c|u) = sum_i w_ui p(c|i) / sum_i w_ui over the ``history`` weights [n_users, n_items];
    q(c|u) is the same over list items, weighted uniformly (or 1/log2(rank+1) when
    ``rank_discount``). An item's mass is split equally among its categories; items with no
    category carry none. Natural log. NaN where the history has no categorised item; a list with
    no categorised item scores the maximum, -log(alpha).
    """
    if not 0 < alpha <= 1:
        raise DataError(f"alpha: must be in (0, 1], got {alpha}")
    c = _categories("item_categories", item_categories)
    h = _sparse("history", history, (None, c.shape[0]))
    top = _top(ranked, k, c.shape[0], ("history", h.shape[0]))
    split = (sp.diags(1.0 / np.maximum(np.diff(c.indptr), 1)) @ c).tocsr()

    def normalised(m: sp.csr_matrix) -> tuple[sp.csr_matrix, FloatArray]:
        total = np.asarray(m.sum(axis=1)).ravel()
        inv = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
        return (sp.diags(inv) @ m).tocsr(), total

    p, p_total = normalised((h @ split).tocsr())
    weights = _discounts(k) if rank_discount else None
    q, _ = normalised((_membership(top, c.shape[0], weights) @ split).tocsr())
    p.eliminate_zeros()
    coo = p.tocoo()
    rows, cols, pv = coo.row, coo.col, coo.data
    q_smooth = (1 - alpha) * _values_at(q, rows, cols) + alpha * pv
    kl = np.bincount(rows, weights=pv * np.log(pv / q_smooth), minlength=top.shape[0])
    return np.where(p_total > 0, kl, np.nan)


def interest_coverage(ranked: npt.ArrayLike, k: int, item_topics: Matrix, user_interests: Matrix) -> FloatArray:
    """Share of each user's interests (topics) hit by at least one of the first k items.

    ``user_interests`` is [n_users, n_topics], nonzero = the user holds that interest (e.g. the
    topics of their held-out items). NaN for users with no interests.
    """
    interests = _sparse("user_interests", user_interests)
    c = _categories("item_topics", item_topics, interests.shape[1])
    top = _top(ranked, k, c.shape[0], ("user_interests", interests.shape[0]))
    listed = (_membership(top, c.shape[0]) @ c).tocsr()
    both = interests.multiply(listed).tocsr()
    both.eliminate_zeros()
    return _ratio(np.diff(both.indptr).astype(np.float64), np.diff(interests.indptr).astype(np.float64))


# --------------------------------------------------------------------------- popularity bias and exposure

HEAD_SHARE = 0.2
"""The head is the most popular items that together hold this share of training popularity."""


def popularity_buckets(item_popularity: npt.ArrayLike, share: float = HEAD_SHARE) -> np.ndarray:
    """Each item's popularity bucket: 0 head, 1 middle, 2 tail (Abdollahpouri et al., FLAIRS 2019).

    Items are sorted by popularity, most popular first (ties: lower index first). The head is the
    shortest prefix holding at least ``share`` of the total popularity; the tail is the shortest
    suffix holding at least ``share`` of it (unseen items included), without taking head items;
    the middle is the rest. With all popularity 0 every item is tail.
    """
    pop = _popularity(item_popularity)
    if not 0 < share < 1:
        raise DataError(f"share: must be in (0, 1), got {share}")
    order = np.lexsort((np.arange(pop.size), -pop))
    total = pop.sum()
    bucket = np.full(pop.size, 2, dtype=np.int64)
    if total == 0:
        return bucket
    cumulative = np.cumsum(pop[order])
    n_head = int(np.searchsorted(cumulative, share * total - 1e-9 * total)) + 1
    from_end = np.cumsum(pop[order][::-1])
    n_tail = min(int(np.searchsorted(from_end, share * total - 1e-9 * total)) + 1, pop.size - n_head)
    bucket[order[:n_head]] = 0
    bucket[order[n_head : pop.size - n_tail]] = 1
    return bucket


def head_items(item_popularity: npt.ArrayLike, share: float = HEAD_SHARE) -> np.ndarray:
    """Boolean [n_items]: the head of :func:`popularity_buckets` (the rest is the long tail)."""
    return popularity_buckets(item_popularity, share) == 0


def average_popularity(ranked: npt.ArrayLike, k: int, item_popularity: npt.ArrayLike) -> FloatArray:
    """ARP@k: mean training popularity (distinct users) of the list's items (Abdollahpouri et al., 2019).

    Unlike :func:`popularity_percentile` it is in users, so a shift among the most popular items
    shows. NaN for lists with no items.
    """
    pop = _popularity(item_popularity)
    top = _top(ranked, k, pop.size)
    return _row_mean(pop[np.maximum(top, 0)], top >= 0)


def long_tail_share(
    ranked: npt.ArrayLike, k: int, item_popularity: npt.ArrayLike, share: float = HEAD_SHARE
) -> FloatArray:
    """Share of the list's items outside the head: the most popular items holding ``share`` (20 %)
    of training popularity (:func:`popularity_buckets`). NaN for lists with no items."""
    tail = ~head_items(item_popularity, share)
    top = _top(ranked, k, tail.size)
    return _row_mean(tail[np.maximum(top, 0)].astype(np.float64), top >= 0)


def exposure(ranked: npt.ArrayLike, k: int, n_items: int, discount: bool = False) -> FloatArray:
    """Each catalogue item's exposure [n_items]: the list slots it fills in the first k of every list.

    Every slot counts 1, or 1/log2(rank + 1) with ``discount`` (the attention model of NDCG).
    """
    if isinstance(n_items, bool) or not isinstance(n_items, int | np.integer) or n_items < 1:
        raise DataError(f"n_items: must be a positive integer, got {n_items!r}")
    top = _top(ranked, k, int(n_items))
    weights = np.broadcast_to(_discounts(k) if discount else np.ones(k), top.shape)
    return np.bincount(top[top >= 0], weights=weights[top >= 0], minlength=int(n_items)).astype(np.float64)


def exposure_gini(ranked: npt.ArrayLike, k: int, n_items: int, discount: bool = False) -> float:
    """Gini coefficient of :func:`exposure` over the whole catalogue (unexposed items count as 0).

    0 when every item gets the same exposure; (n - 1) / n when one item gets all of it. Slots
    weigh equally unless ``discount``: then this is the Gini of NDCG-style attention. NaN when
    nothing is exposed.
    """
    x = np.sort(exposure(ranked, k, n_items, discount))
    total = x.sum()
    if total == 0:
        return float("nan")
    n = x.size
    return float(((2 * np.arange(1, n + 1) - n - 1) @ x) / (n * total))


def exposure_share(ranked: npt.ArrayLike, k: int, item_groups: Matrix, discount: bool = False) -> FloatArray:
    """Share of all exposure (list slots, see :func:`exposure`) that each item group receives [n_groups].

    ``item_groups`` follows ``item_categories``' convention; an item in several groups splits its
    exposure equally among them, so the shares sum to 1 minus the share of items in no group.
    """
    c = _categories("item_groups", item_groups)
    given = exposure(ranked, k, c.shape[0], discount)
    total = given.sum()
    if total == 0:
        raise DataError("ranked: no list holds an item, so exposure shares are undefined")
    split = sp.diags(1.0 / np.maximum(np.diff(c.indptr), 1)) @ c
    return np.asarray(split.T @ given).ravel() / total
