"""The ranking stage: from a user's interests (or any scorer's scores) to a final top-n list.

``Ranker.rank(state, n)`` runs, per request:

1. **filter**: one boolean mask over the catalogue (history, blocked items, business rules);
2. **retrieve**: each interest vector fetches its ``candidates`` best allowed items from faiss;
3. **merge**: every retrieved item gets its term under each interest (``dot + offsets[j]`` for
   a model that gives offsets, else ``weights[j] * dot``), merged into one score by
   ``RankConfig.interest_merge`` (:func:`~facetrec.ranking.retrieval.merge_interests`: the
   mixture's log-sum-exp or the best single interest); the interest contributing most is the
   item's interest. The pool re-ranked is the ``candidates`` best merged items plus each
   interest's own top ``n`` (so every interest can fill a list on its own);
4. **boost**: optional freshness and trending boosts, scaled by the pool's score range;
5. **re-rank**: optionally a tuned language model re-orders the best candidates by reading the
   history and their text (``RankConfig.rerank_model``, :mod:`~facetrec.ranking.lm_rerank`); then
   none, MMR, DPP, interest quotas, calibration or xQuAD over item groups
   (exposure of the long tail or of categories), trading relevance for diversity with ``lam``
   (1 = pure relevance);
6. **explain** (optional): the interest each item serves, its label and the history items behind it.

``Ranker.rank_scores(scores, n)`` does steps 1 and 3-6 for a single score vector from any
scorer. List scores are the boosted relevance in the scorer's units; after re-ranking they need
not be decreasing. A ranker fitted without item vectors (a model with none, and no item
embeddings) ranks scores only: no ANN retrieval, and MMR/DPP and explanations say they need vectors.
"""

from __future__ import annotations

import time
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from facetrec.component import Component
from facetrec.config import from_dict, to_dict
from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.metrics import head_items
from facetrec.ids import Vocabulary
from facetrec.ranking import explain as ex
from facetrec.ranking.calibration import category_distribution
from facetrec.ranking.config import RankConfig, make_reranker
from facetrec.ranking.filters import CatalogFilter, Rules, allowed_mask, as_rules, check_indices
from facetrec.ranking.retrieval import (
    CandidatePool,
    VectorIndex,
    check_order,
    choose_index_kind,
    merge_interests,
    top_allowed,
)
from facetrec.ranking.temporal import TrendingCounter, freshness
from facetrec.types import Interactions, ItemCatalog, ItemList, UserState, object_array


class Ranker(Component[RankConfig]):
    """Retrieval, filters, temporal boosts, diversity re-ranking and explanations (see module doc).

    ``Ranker(RankConfig(diversity="mmr", lam=0.7))`` or ``Ranker(diversity="mmr", lam=0.7)``;
    then ``fit(item_vectors, catalog, interactions)`` and ``rank(state, n)``.
    """

    config_class = RankConfig

    item_vectors_: np.ndarray
    similarity_vectors_: np.ndarray
    index_kind_: str

    def fit(
        self,
        item_vectors: np.ndarray | None,
        catalog: ItemCatalog | None = None,
        interactions: Interactions | None = None,
        *,
        items: Vocabulary | None = None,
        similarity_vectors: np.ndarray | None = None,
    ) -> Self:
        """Index ``item_vectors`` [n_items, d] (row i is item i) and read the catalogue and events.

        ``item_vectors`` None: no retrieval index (``rank_scores`` only); ``catalog`` or ``items``
        must then give the item count.

        ``catalog`` gives the item vocabulary, categories and numeric attributes (rules,
        calibration, labels), creation times (freshness) and titles (explanations);
        ``interactions`` the events trending counts and popularity (xQuAD's head and long tail)
        are read from. ``items`` names the items when there is no
        catalogue (default: "0".."n-1"). ``similarity_vectors`` [n_items, d'] (e.g. language-model
        embeddings) replace ``item_vectors`` for the cosine similarity of MMR, DPP and explanations.
        """
        c = self.config
        if item_vectors is None:
            source = catalog.items if catalog is not None else items
            if source is None:
                raise DataError("Ranker.fit: without item_vectors, pass the catalog (or items) to say how many items")
            n = len(source)
            vectors, self.index_kind_, self.index_ = None, "none", None
        else:
            vectors = _matrix("item_vectors", item_vectors)
            n = vectors.shape[0]
            self.index_kind_ = choose_index_kind(c.retrieval, n, c.flat_max_items, c.hnsw_max_items)
            self.index_ = VectorIndex(
                vectors, self.index_kind_, nlist=c.ivf_nlist or None, nprobe=c.ivf_nprobe, m=c.hnsw_m,
                ef_search=c.hnsw_ef_search, pq_m=c.ivfpq_m, refine=c.ivfpq_refine, seed=c.seed,
            )  # fmt: skip
        sim = vectors if similarity_vectors is None else _matrix("similarity_vectors", similarity_vectors, n)
        vocab = self._vocabulary(n, catalog, interactions, items)
        self.n_items_ = n
        self.item_vectors_ = vectors
        if sim is None:
            self.similarity_vectors_ = None
        else:
            norms = np.linalg.norm(sim, axis=1, keepdims=True)
            self.similarity_vectors_ = np.divide(sim, norms, out=np.zeros_like(sim), where=norms > 0)
        self.items_ = vocab
        self.catalog_ = catalog
        self.filter_ = CatalogFilter.from_catalog(catalog, n)
        counts = np.asarray(self.filter_.item_categories.sum(axis=1)).ravel()
        self.category_dist_ = (sp.diags(np.divide(1.0, counts, out=np.zeros(n), where=counts > 0))
                               @ self.filter_.item_categories).tocsr()  # fmt: skip
        self.terms_ = ex.TermIndex.from_catalog(catalog, n)
        self.created_at_ = catalog.created_at if catalog is not None else np.full(n, np.nan)
        self.trending_ = (
            TrendingCounter(interactions.item_idx, interactions.timestamp, n) if interactions is not None else None
        )
        times = [float(np.nanmax(self.created_at_))] if np.isfinite(self.created_at_).any() else []
        if self.trending_ is not None and self.trending_.latest is not None:
            times.append(self.trending_.latest)
        self.reference_time_ = max(times) if times else None
        self.head_ = head_items(interactions.users_per_item()) if interactions is not None else None
        self.reranker_ = self._reranker(c)
        self.lm_reranker_ = self._lm_reranker(c)
        return self

    def _lm_reranker(self, config: RankConfig) -> Any:
        """The language-model re-ranker ``config.rerank_model`` names, reading this catalogue (None: off)."""
        if not config.rerank_model:
            return None
        from facetrec.ranking.lm_rerank import load_reranker

        return load_reranker(config.rerank_model, self.catalog_)

    def _reranker(self, config: RankConfig) -> Any:
        if config.diversity in ("mmr", "dpp") and self.similarity_vectors_ is None:
            raise ConfigError(
                f"diversity {config.diversity!r} compares items by their vectors, and this model has none and "
                "the bundle no item embeddings; train with an item encoder (e.g. --encoder lexical)"
            )
        if config.diversity == "xquad" and config.exposure_groups == "popularity" and self.head_ is None:
            raise ConfigError("diversity 'xquad' over popularity groups needs the events items are popular by; "
                              "fit the Ranker with interactions")  # fmt: skip
        if config.diversity == "xquad" and config.exposure_groups == "category" and not self.filter_.category_names:
            raise ConfigError("diversity 'xquad' with exposure_groups 'category' needs item categories, and the "
                              "catalogue has none; use exposure_groups 'popularity'")  # fmt: skip
        return make_reranker(config)

    def reconfigure(self, **changes: Any) -> Ranker:
        """A Ranker sharing this one's fitted index and catalogue, with re-ranking settings changed
        (e.g. ``diversity``, ``lam``, ``candidates``, boosts, explanation settings), so a service or
        a parameter sweep can vary them per request without refitting. Index settings cannot change."""
        self._require_fitted("reconfigure")
        index_keys = {"retrieval", "flat_max_items", "hnsw_max_items", "ivf_nlist", "ivf_nprobe", "ivfpq_m",
                      "ivfpq_refine", "hnsw_m", "hnsw_ef_search", "seed"}  # fmt: skip
        fixed = sorted(index_keys & set(changes))
        if fixed:
            raise ConfigError(f"Ranker.reconfigure: {', '.join(fixed)} shape the faiss index; fit a new Ranker instead")
        config = from_dict(RankConfig, {**to_dict(self.config), **changes}, "Ranker.reconfigure")
        other = type(self)(config)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k.endswith("_")})
        other.reranker_ = other._reranker(config)
        if config.rerank_model != self.config.rerank_model:
            other.lm_reranker_ = other._lm_reranker(config)
        return other

    @property
    def n_items(self) -> int:
        self._require_fitted("n_items")
        return self.n_items_

    @property
    def is_fitted(self) -> bool:  # one attribute lookup per request instead of scanning every attribute
        return "n_items_" in self.__dict__

    # ------------------------------------------------------------------ requests

    def rank(
        self,
        state: UserState,
        n: int,
        exclude_idx: np.ndarray | None = None,
        now: float | None = None,
        explain: bool = False,
        rules: Rules | dict[str, Any] | None = None,
    ) -> ItemList:
        """The top ``n`` items for ``state``, best first, never one of ``state.history_idx`` or
        ``exclude_idx``; fields "interest" (int32) and, with ``explain``, "explanation" (str) and
        "because" (tuples of history item indices).

        ``now`` (epoch seconds) is the request time for freshness and trending; default: the
        latest time seen at fit (last event or item creation), so offline runs are repeatable.
        ``rules``: :class:`~facetrec.ranking.filters.Rules` (or a dict of its fields). Fewer than
        ``n`` items come back only when the filters leave fewer.
        """
        self._require_fitted("rank")
        if not isinstance(state, UserState):
            raise DataError(f"Ranker.rank: state must be a UserState, got {type(state).__name__}")
        n = self._check_n(n)
        if self.index_ is None:
            raise ConfigError("Ranker.rank: fitted without item vectors, so it cannot retrieve by interest; "
                              "use rank_scores")  # fmt: skip
        if state.interests.shape[1] != self.item_vectors_.shape[1]:
            raise DataError(
                f"UserState.interests: dimension {state.interests.shape[1]} does not match the fitted item "
                f"vectors ({self.item_vectors_.shape[1]}); build the state in the same vector space"
            )
        history = check_indices("UserState.history_idx", state.history_idx, self.n_items)
        allowed = self._allowed(history, exclude_idx, rules)
        n_allowed = int(allowed.sum())
        if n_allowed == 0:
            return self.empty()
        fetch = min(max(self.config.candidates, n), n_allowed)
        _, ids = self.index_.search(state.interests, fetch, None if n_allowed == self.n_items else allowed)
        found = np.unique(ids[ids >= 0])
        terms = state.interest_scores(state.interests @ self.item_vectors_[found].T)
        merged, interest = merge_interests(terms, self._merge_rule)
        order = np.lexsort((found, -merged))
        items, best, interest = found[order].astype(np.int64), merged[order], interest[order]
        in_pool = np.arange(len(items)) < self.config.candidates
        in_pool |= np.isin(items, ids[:, :n].ravel())
        pool = self._pool(items[in_pool], best[in_pool], interest[in_pool], state.weights, history, now)
        return self._finish(pool, n, explain, state.attention, history)

    def rank_scores(
        self,
        scores: np.ndarray,
        n: int,
        exclude_idx: np.ndarray | None = None,
        *,
        history_idx: np.ndarray | None = None,
        state: UserState | None = None,
        now: float | None = None,
        explain: bool = False,
        rules: Rules | dict[str, Any] | None = None,
    ) -> ItemList:
        """The top ``n`` items by ``scores`` [n_items] from any single-vector scorer, re-ranked.

        ``scores`` must be finite, or -inf for items never to return. ``history_idx`` (or
        ``state.history_idx``) is excluded and is the basis of calibration and explanations.
        With ``state``, each item's interest is the one under which it scores best
        (``UserState.interest_scores``; for quotas and explanations); without it every item
        serves one interest, 0.
        """
        self._require_fitted("rank_scores")
        n = self._check_n(n)
        s = np.asarray(scores)
        if s.shape != (self.n_items,) or not np.issubdtype(s.dtype, np.number):
            raise DataError(f"scores: expected a numeric array of shape ({self.n_items},), got {s.dtype} {s.shape}")
        s = s.astype(np.float64, copy=False)
        if np.isnan(s).any() or np.isposinf(s).any():
            bad = int(np.flatnonzero(np.isnan(s) | np.isposinf(s))[0])
            raise DataError(
                f"scores: {int((np.isnan(s) | np.isposinf(s)).sum())} NaN or +inf values (first at item {bad}); "
                "score every item, using -inf for items that must not be returned"
            )
        if state is not None and not isinstance(state, UserState):
            raise DataError(f"Ranker.rank_scores: state must be a UserState or None, got {type(state).__name__}")
        if state is not None and (
            self.item_vectors_ is None or state.interests.shape[1] != self.item_vectors_.shape[1]
        ):
            raise DataError(f"UserState.interests: dimension {state.interests.shape[1]} does not match the fitted "
                            f"item vectors ({self.item_vectors_.shape[1]})")  # fmt: skip
        hist_src = history_idx if history_idx is not None else (state.history_idx if state is not None else None)
        history = check_indices("history_idx", hist_src, self.n_items)
        allowed = self._allowed(history, exclude_idx, rules)
        idx = top_allowed(s, allowed, max(self.config.candidates, n))
        if not idx.size:
            return self.empty()
        if state is not None:
            terms = state.interest_scores(state.interests @ self.item_vectors_[idx].T)
            _, interest = merge_interests(terms, self._merge_rule)
            weights = state.weights
            attention = state.attention if history_idx is None else None
        else:
            interest, weights, attention = np.zeros(len(idx), np.int32), np.ones(1, np.float32), None
        if attention is None:
            attention = np.full((len(weights), len(history)), 1.0 / max(len(history), 1), np.float32)
        pool = self._pool(idx, s[idx], interest, weights, history, now)
        return self._finish(pool, n, explain, attention, history)

    def label_interests(self, state: UserState) -> list[str]:
        """A short label per interest of ``state`` (e.g. "sci-fi, horror"): the terms (catalogue
        categories, else tags, else title words) most characteristic of the history items the
        interest attends to; "interest j" where nothing is known."""
        self._require_fitted("label_interests")
        history = check_indices("UserState.history_idx", state.history_idx, self.n_items)
        return ex.interest_labels(state.attention, history, self.terms_, self.config.label_terms)

    # ------------------------------------------------------------------ steps

    @property
    def _merge_rule(self) -> str:
        return "max" if self.config.interest_merge == "auto" else self.config.interest_merge

    def _check_n(self, n: Any) -> int:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= self.n_items:
            raise DataError(f"n: must be an integer from 1 to the catalogue size {self.n_items}, got {n!r}")
        return int(n)

    def _allowed(self, history: np.ndarray, exclude_idx: Any, rules: Any) -> np.ndarray:
        blocked = check_indices("exclude_idx", exclude_idx, self.n_items)
        rules = as_rules(rules)
        mask = None if rules is None or rules.empty else self.filter_.mask(rules)
        return allowed_mask(self.n_items, history, blocked, mask)

    def _now(self, now: float | None) -> float:
        if now is None:
            return self.reference_time_ if self.reference_time_ is not None else time.time()
        if isinstance(now, bool) or not isinstance(now, int | float | np.integer | np.floating) or not np.isfinite(now):
            raise DataError(f"now: expected epoch seconds as a finite number, got {now!r}")
        return float(now)

    def _pool(
        self,
        idx: np.ndarray,
        score: np.ndarray,
        interest: np.ndarray,
        weights: np.ndarray,
        history: np.ndarray,
        now: float | None,
    ) -> CandidatePool:
        """Candidates with boosted relevance, similarity vectors and (for calibration) categories."""
        c = self.config
        relevance = np.asarray(score, dtype=np.float64).copy()
        if c.uses_freshness or c.uses_trending:
            t = self._now(now)
            boost = np.zeros(len(idx))
            if c.uses_freshness:
                boost += c.freshness_weight * freshness(self.created_at_[idx], t, c.freshness_half_life_days)
            if c.uses_trending and self.trending_ is not None:
                boost += c.trending_weight * self.trending_.scores(t, c.trending_window_days)[idx]
            span = float(np.ptp(relevance)) if len(relevance) > 1 else 0.0
            relevance += boost * (span if span > 0 else max(1.0, float(np.abs(relevance).max(initial=0.0))))
        categories = target = None
        if c.diversity == "calibration" and self.filter_.category_names and len(history):
            categories, target = self._calibration_inputs(idx, history)
        if c.diversity == "xquad" and (len(history) or c.exposure_groups == "popularity"):
            categories, target = self._exposure_inputs(idx, history)
        return CandidatePool(
            idx=np.asarray(idx, dtype=np.int64),
            relevance=relevance,
            interest=np.asarray(interest, dtype=np.int32),
            weights=np.asarray(weights, dtype=np.float64),
            vectors=self.similarity_vectors_[idx] if self.similarity_vectors_ is not None else np.zeros((len(idx), 0)),
            categories=categories,
            target=target,
        )

    def _calibration_inputs(self, idx: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate distributions over the user's categories plus one "other" column, and the target.

        Only the categories of the user's history enter the KL; the rest matter through the
        list's total mass, which the "other" column carries, so C never exceeds the history's.
        """
        p = category_distribution(self.filter_.item_categories, history)
        support = np.flatnonzero(p > 0)
        rows = self.category_dist_[idx]
        inside = rows[:, support].toarray()
        other = np.asarray(rows.sum(axis=1)).ravel() - inside.sum(axis=1)
        return np.column_stack([inside, np.maximum(other, 0.0)]), np.append(p[support], 0.0)

    def _exposure_inputs(self, idx: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """xQuAD's item groups for the candidates [m, G] and the share each should get [G]: head
        and long tail in proportion to their sizes (the exposure they would get if every item were
        shown equally often: users' histories already follow popularity), or the categories of
        the user's history in its proportions (a candidate outside them earns no bonus)."""
        if self.config.exposure_groups == "popularity":
            head = self.head_
            groups = np.column_stack([head[idx], ~head[idx]]).astype(np.float64)
            return groups, np.array([head.sum(), (~head).sum()], dtype=np.float64)
        p = category_distribution(self.filter_.item_categories, history)
        support = np.flatnonzero(p > 0)
        return self.category_dist_[idx][:, support].toarray(), p[support]

    def _finish(
        self, pool: CandidatePool, n: int, explain: bool, attention: np.ndarray, history: np.ndarray
    ) -> ItemList:
        if self.lm_reranker_ is not None:
            pool = self.lm_reranker_.rescore(pool, history)
        if self.reranker_ is None:
            order = np.lexsort((pool.idx, -pool.relevance))[: min(n, len(pool))]
        else:
            order = check_order(self.reranker_.rerank(pool, n), len(pool), n)
        idx, interest = pool.idx[order], pool.interest[order]
        fields: dict[str, np.ndarray] = {"interest": interest.astype(np.int32)}
        if explain:
            fields.update(self._explain(idx, interest, attention, history))
        return ItemList.from_idx(idx, pool.relevance[order], self.items_, **fields)

    def _explain(
        self, idx: np.ndarray, interest: np.ndarray, attention: np.ndarray, history: np.ndarray
    ) -> dict[str, np.ndarray]:
        labels = ex.interest_labels(attention, history, self.terms_, self.config.label_terms)
        if self.similarity_vectors_ is None:  # nothing to say which history items are alike
            empty = [()] * len(idx)
            return {"explanation": object_array([""] * len(idx)), "because": object_array(empty)}
        att = np.asarray(attention, dtype=np.float64)[interest]
        top = ex.contributors(
            self.similarity_vectors_[idx], self.similarity_vectors_[history], att, self.config.explain_items
        )
        because, texts = [], []
        for row, j in zip(top, interest, strict=True):
            items = tuple(int(history[p]) for p in row if p >= 0)
            because.append(items)
            titles = [self._title(i) for i in items]
            texts.append(ex.explanation(self.config.explain_template, titles, labels[j]) if titles else "")
        return {"explanation": object_array(texts), "because": object_array(because)}

    def _title(self, idx: int) -> str:
        return self.catalog_.title(idx) if self.catalog_ is not None else str(self.items_.id_of(idx))

    def empty(self) -> ItemList:
        """A list with no items (and the fields every list has)."""
        return ItemList.from_idx(np.zeros(0, np.int32), np.zeros(0, np.float32), self.items_,
                                 interest=np.zeros(0, np.int32))  # fmt: skip

    def _vocabulary(
        self, n: int, catalog: ItemCatalog | None, interactions: Interactions | None, items: Vocabulary | None
    ) -> Vocabulary:
        vocab = items if items is not None else (catalog.items if catalog is not None else None)
        if vocab is None:
            vocab = interactions.items if interactions is not None else Vocabulary(map(str, range(n)), "item")
        for what, size in (
            ("catalog", len(catalog) if catalog is not None else n),
            ("interactions", interactions.n_items if interactions is not None else n),
            ("items", len(vocab)),
        ):
            if size != n:
                raise DataError(f"Ranker.fit: {what} has {size} items but item_vectors has {n} rows; "
                                "row i of item_vectors must describe item i")  # fmt: skip
        if catalog is not None and items is not None and not (catalog.items == items):
            raise DataError("Ranker.fit: items and catalog.items differ; pass one vocabulary")
        return vocab

    def save(self, directory: Any) -> Any:
        """Not supported: a Ranker is rebuilt by ``fit`` from the saved item vectors and catalogue."""
        raise ConfigError(
            "Ranker.save: a Ranker holds a faiss index and the catalogue; save the item vectors and "
            "the config, and call Ranker(config).fit(...) after loading"
        )


def _matrix(name: str, value: Any, rows: int | None = None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1 or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{name}: expected a numeric 2-d array [n_items, d], got {arr.dtype} {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise DataError(f"{name}: has {arr.shape[0]} rows but item_vectors has {rows}; one row per item")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise DataError(f"{name}: contains NaN or infinite values")
    return arr
