"""One plain class composing the stages: histories -> model (user states or scores) -> ranker -> a list.

A :class:`Recommender` holds a fitted model (any registered scorer), the item catalogue, its
item embeddings (from the bundle's item encoder), a :class:`~facetrec.history.HistoryStore`
and a :class:`~facetrec.ranking.Ranker`. ``recommend(Query)`` is the one place a list is made:
the CLI, the HTTP service and evaluation (``recommend_batch``, which scores users in blocks but
ranks each with the same code) all go through it, so a published number describes the list a
user receives. What the model can do is read from its declared capabilities, never guessed:

- a model with **interest vectors** (the facet model) encodes the history into a UserState and
  the ranker retrieves per interest and merges by ``RankConfig.interest_merge``;
- any other model scores every item from the history and the ranker ranks those scores;
- a user with no events gets the model's scores for an empty history (popularity for the
  sequence models), explained as such.

The item-attribute graph (:mod:`~facetrec.ranking.relations`, built from the catalogue and kept
in the bundle) gives each explained item the attributes it shares with a history item, and,
with ``cold_items`` > 0, fills up to that many of a list's last places with items no event has
reached yet, found through the attributes they share with the user's history.

A bundle on disk is a directory: ``manifest.json`` (format, versions, model kind, ranking
config), ``scorer/`` (the model's manifest and safetensors), ``embeddings/`` (item embeddings
and the encoder's settings), ``data/`` (catalogue and histories as a dataset directory) and
``relations/`` (the item graph). No pickle.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from facetrec import __version__
from facetrec.component import Component, read_json
from facetrec.config import from_dict, to_dict
from facetrec.data.dataset import Dataset
from facetrec.errors import ConfigError, DataError, UnknownIdError
from facetrec.history import EventRecord, MemoryHistoryStore
from facetrec.ids import Vocabulary
from facetrec.ranking import RankConfig, Ranker
from facetrec.ranking import explain as ex
from facetrec.ranking.relations import ItemGraph
from facetrec.scoring.base import Scorer
from facetrec.types import Event, Interactions, ItemCatalog, ItemEmbeddings, ItemList, Query, UserState, object_array

BUNDLE_FORMAT = "facetrec-bundle"
POPULAR = "Popular right now"


@contextmanager
def _one_thread() -> Iterator[None]:
    """faiss and torch on one thread while lists are made: each request's operations are small,
    and their thread teams spinning on a busy 2-core machine made evaluating the facet model 12
    times slower (measured: 11.0 s against 0.9 s for 600 users). The caller's settings return after."""
    import faiss
    import torch

    before = faiss.omp_get_max_threads(), torch.get_num_threads()
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before[0])
        torch.set_num_threads(before[1])


@dataclass(slots=True)
class Known:
    """What the Recommender keeps of a known user between requests: their state, the items they
    have seen (sorted, unique: what a list never contains) and whether events arrived since."""

    state: UserState
    seen: np.ndarray
    stale: bool = False


class Recommender:
    """A fitted model, the catalogue, item embeddings, histories and a ranker, ready to answer queries."""

    def __init__(
        self,
        scorer: Scorer,
        catalog: ItemCatalog,
        history: Interactions | MemoryHistoryStore,
        ranking: RankConfig | None = None,
        *,
        embeddings: ItemEmbeddings | None = None,
        encoder: Any = None,
        cache_users: int = 50_000,
        fit_settings: dict[str, Any] | None = None,
        graph: ItemGraph | None = None,
        cold_items: int = 0,
    ) -> None:
        scorer._require_fitted("Recommender")
        store = history if isinstance(history, MemoryHistoryStore) else MemoryHistoryStore(history)
        if not store.items == catalog.items or scorer.n_items_ > len(catalog):
            raise DataError(
                f"Recommender: scorer ({scorer.n_items_} items), catalogue ({len(catalog)}) and histories "
                f"({len(store.items)}) must share one item vocabulary"
            )
        if embeddings is not None and not embeddings.items == catalog.items:
            raise DataError("Recommender: the item embeddings were made for another catalogue")
        if graph is not None and graph.n_items != len(catalog):
            raise DataError(f"Recommender: the item graph has {graph.n_items} items, the catalogue {len(catalog)}")
        if isinstance(cold_items, bool) or not isinstance(cold_items, int) or cold_items < 0:
            raise ConfigError(f"cold_items: must be an integer >= 0 (0: off), got {cold_items!r}")
        self.scorer, self.catalog, self.histories = scorer, catalog, store
        self.ranking = ranking or RankConfig()
        self.embeddings, self.encoder = embeddings, encoder
        self.fit_settings = dict(fit_settings or {})
        """How the model was trained (seed, first_only, encoder), so retraining repeats it."""
        self.graph = graph if graph is not None else ItemGraph.from_catalog(catalog)
        self.cold_items = cold_items
        """Most places of a list given to cold items found through the graph (0: none)."""
        self._cold: np.ndarray | None = None
        self._ranker: Ranker | None = None
        self._variants: dict[tuple, Ranker] = {}  # the ranker with per-request settings, by settings
        self._placer: Any = None
        self._popularity: np.ndarray | None = None
        self.cache_users = cache_users
        self._states: OrderedDict[str, Known] = OrderedDict()  # known users' states, least recent first

    @property
    def can(self) -> frozenset[str]:
        """What the model can do (``Scorer.capabilities.can``)."""
        return self.scorer.capabilities.can

    @property
    def items(self) -> Vocabulary:
        return self.catalog.items

    @property
    def history(self) -> Interactions:
        """Every stored event, sorted by user then time (a snapshot; append with :meth:`add_events`)."""
        return self.histories.interactions()

    # ------------------------------------------------------------------ histories

    def append(self, events: Sequence[EventRecord]) -> int:
        """Add events to the histories (idempotent by event id); only their users' cached states
        are marked stale, to be re-encoded from their newest events when next read, so the cost is
        proportional to the events, not to the log. Returns how many."""
        added = self.histories.append(events)
        for e in events:
            known = self._states.get(str(e.user_id))
            if known is not None:
                known.stale = True
        return added

    def warm(self, limit: int = 10_000) -> int:
        """Encode the states of the ``limit`` most recently active users in batches (a restart's
        rebuild, so their first requests are answered from the cache); returns how many."""
        if limit < 1 or "interest_vectors" not in self.can:
            return 0
        history = self.history
        offsets = history.user_offsets()
        active = np.flatnonzero(np.diff(offsets) > 0)
        latest = history.timestamp[offsets[active + 1] - 1]
        chosen = active[np.argsort(latest, kind="stable")][-limit:]  # oldest first: the LRU end
        for start in range(0, len(chosen), BLOCK):
            batch = chosen[start : start + BLOCK]
            block = self._for_scorer(_events_of(history, offsets, batch))
            for u, state in zip(batch, self.scorer.encode_users(block, batch), strict=True):
                seen = np.unique(history.item_idx[offsets[u] : offsets[u + 1]])
                self._cache(str(history.users.id_of(int(u))), Known(state, seen))
        return len(chosen)

    def add_events(
        self,
        user_ids: list[str],
        item_ids: list[str],
        timestamps: list[int],
        events: list[str] | None = None,
        ratings: list[float] | None = None,
    ) -> int:
        """Append events (new users are added); returns how many. Unknown items raise UnknownIdError."""
        n = len(user_ids)
        if len(item_ids) != n or len(timestamps) != n or (events is not None and len(events) != n):
            raise DataError("add_events: user_ids, item_ids, timestamps (and events) must have the same length")
        records = [
            EventRecord(
                str(user_ids[i]),
                str(item_ids[i]),
                int(timestamps[i]),
                "click" if events is None else events[i],
                None if ratings is None else ratings[i],
            )
            for i in range(n)
        ]
        return self.append(records)

    def user_history(self, query: Query) -> Interactions:
        """The query's events as a one-user history: the known user's events, then ``query.history``."""
        known_user = query.user_id is not None and query.user_id in self.histories
        if query.user_id is not None and not known_user and not query.history:
            raise UnknownIdError(f"unknown user id {query.user_id!r}; pass their history in the query instead")
        name = query.user_id or "anonymous"
        nothing = np.zeros(0, np.int32)
        known = (
            self.histories.user_events(name)
            if known_user
            else Interactions(nothing, nothing, nothing.astype(np.int64), Vocabulary([name], "user"), self.items)
        )
        extra = self.items.lookup(list(query.history))
        if (extra < 0).any():
            raise UnknownIdError(f"unknown item id {query.history[int(np.flatnonzero(extra < 0)[0])]!r} in history")
        if not len(extra):
            return known
        last = int(known.timestamp.max()) if len(known) else 0
        now = query.time if query.time is not None else last + len(extra)
        times = np.maximum(now - len(extra) + 1 + np.arange(len(extra)), last)
        return Interactions(
            np.zeros(len(known) + len(extra), np.int32),
            np.r_[known.item_idx, extra],
            np.r_[known.timestamp, times],
            Vocabulary([name], "user"),
            self.items,
            np.r_[known.event, np.full(len(extra), Event.CLICK, np.int8)],
            np.r_[known.rating, np.full(len(extra), np.nan, np.float32)],
            np.r_[known.weight, np.ones(len(extra), np.float32)],
        )

    # ------------------------------------------------------------------ answers

    def interests(self, query: Query) -> tuple[UserState, list[str]] | None:
        """The user's interests and their labels, or None when there is nothing to form them from
        (no events) or the model has no interest vectors (the single-vector baselines)."""
        known = self._known(query)
        if known is not None:
            return known.state, self.ranker().label_interests(known.state)
        history = self.user_history(query)
        if not len(history) or "interest_vectors" not in self.can:
            return None
        state = self.scorer.encode_users(self._for_scorer(history), np.array([0]))[0]
        return state, self.ranker().label_interests(state)

    def recommend(self, query: Query, explain: bool = False, **ranking: Any) -> ItemList:
        """A ranked list for ``query``; ``ranking`` overrides fields of the RankConfig for this call
        (e.g. ``diversity="mmr", lam=0.5``). Items in the history or ``query.exclude`` never appear.

        A known user's request (no extra history) is answered from their kept state: one
        retrieval and re-ranking, with no pass over their history."""
        exclude = np.zeros(0, np.int64)
        if query.exclude:
            exclude = self.items.lookup(list(query.exclude))
            if (exclude < 0).any():
                bad = query.exclude[int(np.flatnonzero(exclude < 0)[0])]
                raise UnknownIdError(f"unknown item id {bad!r} in exclude")
        now = float(query.time) if query.time is not None else None
        ranker = self.ranker(**ranking)
        known = self._known(query) if ranker.index_ is not None else None
        if known is None:
            history = self.user_history(query)
            self._check_left(np.union1d(exclude, history.item_idx))
            return self._lists(history, np.array([0]), query.n, [exclude], now, explain, ranker)[0]
        blocked = np.union1d(known.seen, exclude).astype(np.int32) if len(exclude) else known.seen
        self._check_left(blocked)
        with _one_thread():
            n = min(query.n, len(self.catalog) - len(blocked))
            found = ranker.rank(known.state, n, exclude_idx=blocked, now=now, explain=explain)
            found = self._with_modality(found, known.state) if explain else found
            return self._related(found, known.state.history_idx, blocked, n, explain)

    def _check_left(self, blocked: np.ndarray) -> None:
        if len(blocked) >= len(self.catalog):
            raise DataError(f"no items left to recommend: the user has seen or excluded all {len(self.catalog)}")

    def recommend_batch(self, history: Interactions, users: np.ndarray, n: int, **ranking: Any) -> list[ItemList]:
        """``recommend`` for many users of one log at once (evaluation): each user's events in
        ``history`` are their history, and the model scores them in blocks; ranking is per user
        by the same code as ``recommend``."""
        users = np.asarray(users, dtype=np.int64)
        if history.items != self.items:
            raise DataError("recommend_batch: the history must use the recommender's item vocabulary")
        return self._lists(history, users, n, [np.zeros(0, np.int32)] * len(users), None, False, self.ranker(**ranking))

    def similar(self, item_id: str, n: int = 10) -> ItemList:
        """Items nearest to ``item_id`` by cosine of the vectors the ranker compares items with."""
        idx = self.items.index(item_id)
        ranker = self.ranker(diversity="none")
        if ranker.similarity_vectors_ is None:
            raise ConfigError(
                f"{type(self.scorer).__name__} has no item vectors and this bundle no item embeddings, so items "
                "cannot be compared; train it with an item encoder (facetrec train --encoder lexical)"
            )
        scores = ranker.similarity_vectors_ @ ranker.similarity_vectors_[idx]
        return ranker.rank_scores(scores, min(n, len(self.catalog) - 1), exclude_idx=[idx])

    def ranker(self, **overrides: Any) -> Ranker:
        """The ranker, fitted once on the item vectors; ``overrides`` change re-ranking settings for
        one call without refitting the index. (Trending counts are those of the histories at fit.)"""
        if self._ranker is None:
            vectors, similarity = self._vectors()
            config = self.ranking
            if config.interest_merge == "auto":  # the model's own rule (the facet model's follows its routing)
                config = replace(config, interest_merge=getattr(self.scorer, "interest_merge", "max"))
            self._ranker = Ranker(config).fit(vectors, self.catalog, self.history, similarity_vectors=similarity)
            self._variants = {}
        if not overrides:
            return self._ranker
        key = tuple(sorted(overrides.items()))  # reconfiguring validates a whole config: reuse it
        if key not in self._variants:
            if len(self._variants) >= 64:
                self._variants.clear()
            self._variants[key] = self._ranker.reconfigure(**overrides)
        return self._variants[key]

    @_one_thread()
    def _lists(
        self,
        history: Interactions,
        users: np.ndarray,
        n: int,
        excludes: list[np.ndarray],
        now: float | None,
        explain: bool,
        ranker: Ranker,
    ) -> list[ItemList]:
        """One list per user (module docstring); a known user's kept state is ranked by the same
        ``Ranker.rank`` in :meth:`recommend`."""
        data = history.sorted()
        offsets = data.user_offsets()
        seen = [np.unique(data.item_idx[offsets[u] : offsets[u + 1]]) for u in users]
        blocked = [np.union1d(s, e).astype(np.int32) for s, e in zip(seen, excludes, strict=True)]
        has_events = np.array([len(s) > 0 for s in seen], bool)
        by_state = "interest_vectors" in self.can and ranker.index_ is not None
        out = [ranker.empty() for _ in users]  # a user who has seen every item gets an empty list
        for start in range(0, len(users), BLOCK):
            rows = np.arange(start, min(start + BLOCK, len(users)))
            stated = rows[has_events[rows]] if by_state else np.zeros(0, np.int64)
            if len(stated):
                block = self._for_scorer(_events_of(data, offsets, users[stated]))
                states = self.scorer.encode_users(block, users[stated])
                for r, s in zip(stated, states, strict=True):
                    k = min(n, len(self.catalog) - len(blocked[r]))
                    if k >= 1:
                        out[r] = ranker.rank(s, k, exclude_idx=blocked[r], now=now, explain=explain)
                        if explain:
                            out[r] = self._with_modality(out[r], s)
                        out[r] = self._related(out[r], s.history_idx, blocked[r], k, explain)
            scored = np.setdiff1d(rows, stated)
            with_events = scored[has_events[scored]]
            wanted = users[with_events]
            scores = self._scores(_events_of(data, offsets, wanted), wanted) if len(wanted) else np.zeros((0, 0))
            for r, row in zip(with_events, scores, strict=True):
                k = min(n, len(self.catalog) - len(blocked[r]))
                if k >= 1:
                    out[r] = ranker.rank_scores(
                        row, k, exclude_idx=blocked[r], history_idx=seen[r], now=now, explain=explain
                    )
                    events = data.item_idx[offsets[users[r]] : offsets[users[r] + 1]]
                    out[r] = self._related(out[r], events, blocked[r], k, explain)
            for r in np.setdiff1d(scored, with_events):  # nothing to go on: what most users chose
                found = ranker.rank_scores(self.popularity(), min(n, len(self.catalog) - len(blocked[r])),
                                           exclude_idx=blocked[r], now=now, explain=explain)  # fmt: skip
                out[r] = _popular(found, explain)
        return out

    def _with_modality(self, found: ItemList, state: UserState) -> ItemList:
        """``found`` with field "modality": for each item, the modality (text, image, audio, id,
        ...) that added most to its match with the interest that produced it; only for models
        whose item vectors fuse several (their score splits exactly by modality)."""
        names = self.scorer.modalities
        interest = found.fields.get("interest")
        if len(names) < 2 or interest is None or not len(found):
            return found
        parts = self.scorer.modality_contributions(state.interests[interest], found.idx)
        modality = np.array([names[j] for j in parts.argmax(1)], dtype=object)
        return ItemList(found.idx, found.ids, found.scores, {**found.fields, "modality": modality})

    def _related(self, found: ItemList, history: np.ndarray, blocked: np.ndarray, n: int, explain: bool) -> ItemList:
        """``found`` (a list of at most ``n``) with cold items from the graph in its last places (up
        to ``cold_items``, interest -1, the lowest kept score), and, with ``explain``, each item's
        relation path: field "relation" and a sentence added to its explanation."""
        cold = self._cold_candidates(history, np.union1d(blocked, found.idx), n)
        if not explain and not len(cold):
            return found
        keep = min(len(found), n - len(cold))
        idx = np.r_[found.idx[:keep], cold].astype(np.int32)
        low = float(found.scores[:keep].min()) if keep else 0.0
        scores = np.r_[found.scores[:keep], np.full(len(cold), low, np.float32)]
        pad = {"interest": -1, "because": (), "modality": "attributes", "explanation": ""}
        fields = {
            k: np.concatenate([v[:keep], object_array([pad.get(k)] * len(cold)) if v.dtype == object
                               else np.full(len(cold), pad.get(k, -1), v.dtype)])
            for k, v in found.fields.items()
        }  # fmt: skip
        if explain:
            relations = self.graph.relations(idx, history)
            fields["relation"] = object_array(relations)
            fields["explanation"] = object_array([
                ex.with_relation(str(text), rel.shared, self.catalog.title(rel.with_idx)) if rel else str(text)
                for text, rel in zip(fields["explanation"], relations, strict=True)
            ])  # fmt: skip
        return ItemList.from_idx(idx, scores, self.items, **fields)

    def _cold_candidates(self, history: np.ndarray, blocked: np.ndarray, n: int) -> np.ndarray:
        """Up to ``cold_items`` (and ``n``) cold items outside ``blocked`` sharing attributes with
        ``history``, best first by :meth:`ItemGraph.cold_scores` (ties: lower index)."""
        if not self.cold_items or not len(history):
            return np.zeros(0, np.int64)
        if self._cold is None:  # no events in the histories, or no place in the model
            self._cold = np.flatnonzero(
                (self.popularity() == 0) | (np.arange(len(self.catalog)) >= self.scorer.n_items_)
            )
        cold = np.setdiff1d(self._cold, blocked)
        scores = self.graph.cold_scores(history, cold)
        best = np.lexsort((cold, -scores))[: min(self.cold_items, n)]
        return cold[best[scores[best] > 0]]

    def popularity(self) -> np.ndarray:
        """Distinct users per item in the histories (counted on first use and when the catalogue
        grows): the list of a user without events, whatever the model."""
        if self._popularity is None:
            self._popularity = self.history.users_per_item()
        return self._popularity

    def _known(self, query: Query) -> Known | None:
        """The kept state of the query's known user, when the query adds nothing to their history
        and the model has interest vectors: from the cache, else encoded (and kept). A user
        whose events arrived since is re-encoded from the newest ``Scorer.state_events`` of them,
        which give the same state as the whole history. None: answer from the history instead."""
        user = query.user_id
        if user is None or query.history or "interest_vectors" not in self.can:
            return None
        known = self._states.get(user)
        if known is None or known.stale:
            if user not in self.histories:
                return None
            history = self.histories.user_events(user)
            seen = np.unique(history.item_idx)
            tail = self._for_scorer(history)
            window = self.scorer.state_events
            if window is not None and len(tail) > window:
                tail = tail.take(np.arange(len(tail) - window, len(tail)))
            if not len(tail):
                return None
            known = Known(self.scorer.encode_users(tail, np.array([0]))[0], seen)
            self._cache(user, known)
        self._states.move_to_end(user)
        return known

    def _cache(self, user_id: str, known: Known) -> None:
        self._states[user_id] = known
        self._states.move_to_end(user_id)
        if len(self._states) > self.cache_users:
            self._states.popitem(last=False)

    def _scores(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        """Scores over the whole catalogue; items the model has not seen (added after training, by a
        model that cannot score cold items) get -inf, so they are never returned."""
        scores = self.scorer.score(self._for_scorer(history), users).astype(np.float64)
        scores[~np.isfinite(scores)] = -np.inf
        if scores.shape[1] < len(self.catalog):
            scores = np.pad(scores, ((0, 0), (0, len(self.catalog) - scores.shape[1])), constant_values=-np.inf)
        return scores

    def _for_scorer(self, history: Interactions) -> Interactions:
        """``history`` in the model's item vocabulary (which lacks items added after training)."""
        n = self.scorer.n_items_
        if n == len(self.catalog):
            return history
        kept = history.take(history.item_idx < n)
        items = Vocabulary(self.items.ids[:n], "item")
        return Interactions(kept.user_idx, kept.item_idx, kept.timestamp, kept.users, items,
                            kept.event, kept.rating, kept.weight, kept.review)  # fmt: skip

    def _vectors(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(retrieval vectors, similarity vectors): the model's own item vectors for both when it has
        them, else no retrieval index and the item embeddings (or nothing) for similarity."""
        if "item_vectors" in self.can:
            vectors = np.asarray(self.scorer.item_vectors(), np.float32)
            missing = len(self.catalog) - len(vectors)  # items added later that the model cannot place:
            return np.pad(vectors, ((0, missing), (0, 0))), None  # zero rows, and their scores are -inf
        return None, None if self.embeddings is None else self.embeddings.vectors

    # ------------------------------------------------------------------ catalogue

    def add_items(self, items: ItemCatalog) -> int:
        """Add new catalogue items while serving; returns how many. Their text is encoded with the
        bundle's item encoder (only theirs), and a model that can score cold items scores them at
        once; for other models they wait for the next training (they are never returned before)."""
        known = self.items.lookup(items.items.ids.tolist())
        if (known >= 0).any():
            raise DataError(f"add_items: item {items.items.ids[int(np.flatnonzero(known >= 0)[0])]!r} is already known")
        catalog = self.catalog.concat(items)
        vectors = None
        if self.encoder is not None and self.embeddings is not None:
            vectors = self.encoder.encode_texts(self.encoder.texts(items), self.catalog)
        placed = "cold_items" in self.can and vectors is not None and self.scorer.n_items_ == len(self.catalog)
        if placed:  # otherwise (no encoder, or items already waiting) they wait for retraining
            self.scorer.add_items(vectors)
        self.catalog = catalog
        if vectors is not None:
            from facetrec.content.item_encoder import extend

            self.embeddings = extend(self.embeddings, catalog.items, vectors)
        self.histories.extend_items(catalog.items)
        self.graph = self.graph.extend(items)
        self._ranker, self._placer, self._popularity, self._cold = None, None, None, None
        if placed:
            self._states.clear()  # interests live in the model's item space, which changed
        return len(items)

    def free_text(self, text: str, n: int) -> np.ndarray:
        """Indices of the ``n`` items whose embeddings are nearest to ``text``; only the text is encoded."""
        if self.encoder is None or self.embeddings is None:
            raise ConfigError(
                "this bundle has no item encoder to read free text with; train it with one "
                "(facetrec train --encoder lexical or minilm) or send a list of item ids instead"
            )
        if self._placer is None:
            from facetrec.content.item_encoder import NearestText

            self._placer = NearestText(self.encoder, self.embeddings, self.catalog)
        return self._placer.nearest(text, n)

    # ------------------------------------------------------------------ bundles

    def save(self, directory: str | Path) -> Path:
        """Write the bundle (model, item embeddings, catalogue, histories, ranking config); returns its manifest."""
        from facetrec.scoring.registry import kind_of

        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        self.scorer.save(root / "scorer")
        if self.embeddings is not None and self.encoder is not None:
            from facetrec.content.item_encoder import save_embeddings

            save_embeddings(root / "embeddings", self.encoder, self.embeddings)
        Dataset("bundle", self.history, self.catalog).save(root / "data")
        self.graph.save(root / "relations")
        manifest = {
            "format": BUNDLE_FORMAT,
            "facetrec_version": __version__,
            "kind": kind_of(self.scorer),
            "capabilities": sorted(self.can),
            "ranking": to_dict(self.ranking),
            "fit": self.fit_settings,
            "cold_items": self.cold_items,
            "embeddings": sorted(p.stem for p in (root / "embeddings").glob("*.json")) if self.embeddings else [],
        }
        path = root / "manifest.json"
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Recommender:
        root = Path(directory)
        path = root / "manifest.json"
        if not path.is_file():
            raise ConfigError(f"{root}: no manifest.json; is this a bundle written by `facetrec train`?")
        manifest = read_json(path)
        if manifest.get("format") != BUNDLE_FORMAT:
            raise ConfigError(f"{path}: not a facetrec bundle (format {manifest.get('format')!r})")
        if manifest.get("facetrec_version") != __version__:
            raise ConfigError(
                f"{path}: written by facetrec {manifest.get('facetrec_version')}, this is {__version__}; retrain it"
            )
        scorer = Component.load(root / "scorer")
        if not isinstance(scorer, Scorer):
            raise ConfigError(f"{root / 'scorer'}: holds a {type(scorer).__name__}, not a scorer")
        data = Dataset.load(root / "data")
        ranking = from_dict(RankConfig, manifest.get("ranking", {}), f"{path} ranking")
        encoder = embeddings = None
        if "text" in manifest.get("embeddings", []):
            from facetrec.content.item_encoder import load_embeddings

            encoder, embeddings = load_embeddings(root / "embeddings", data.catalog)
            if hasattr(scorer, "tuned_item_encoder"):  # a tuned encoder is rebuilt from the model's adapter
                encoder = scorer.tuned_item_encoder() or encoder
        fit = manifest.get("fit", {})
        graph = ItemGraph.load(root / "relations", len(data.catalog)) if (root / "relations").is_dir() else None
        return cls(
            scorer, data.catalog, data.interactions, ranking, embeddings=embeddings, encoder=encoder, fit_settings=fit,
            graph=graph, cold_items=manifest.get("cold_items", 0),
        )  # fmt: skip


BLOCK = 256
"""Users scored together in ``recommend_batch`` (memory: BLOCK x n_items floats)."""


def list_rows(recommender: Recommender, items: ItemList, labels: list[str]) -> list[dict[str, Any]]:
    """A list as plain rows (item, title, score, interest, label; with explanations: explanation,
    the ids of the history items behind it and the relation path, ``{"shared": [attribute names],
    "with": history item id}`` or None), as the CLI's and the service's JSON show it."""
    fields = items.fields
    interest = fields.get("interest", np.full(len(items), -1))
    rows = []
    for r, idx in enumerate(items.idx):
        j = int(interest[r])
        row = {
            "item": str(items.ids[r]),
            "title": recommender.catalog.title(int(idx)),
            "score": float(items.scores[r]),
            "interest": j,
            "label": labels[j] if 0 <= j < len(labels) else None,
        }
        if "explanation" in fields:
            row["explanation"] = str(fields["explanation"][r])
            because = fields["because"][r] if "because" in fields else ()
            row["because"] = [str(recommender.items.id_of(int(b))) for b in because]
        if "modality" in fields:
            row["modality"] = str(fields["modality"][r])
        if "relation" in fields:
            rel = fields["relation"][r]
            row["relation"] = (
                {"shared": list(rel.shared), "with": str(recommender.items.id_of(rel.with_idx))} if rel else None
            )
        rows.append(row)
    return rows


def _events_of(data: Interactions, offsets: np.ndarray, users: np.ndarray) -> Interactions:
    """The events of ``users`` only (same vocabularies): a model reads a block of users from it
    without re-reading the whole log, which scores users from their own events anyway."""
    rows = np.concatenate([np.arange(offsets[u], offsets[u + 1]) for u in users]) if len(users) else []
    return data.take(np.asarray(rows, dtype=np.int64))


def _popular(found: ItemList, explain: bool) -> ItemList:
    """A list made for a user without events: no interest, and said to be popular."""
    fields = {"interest": np.full(len(found), -1, np.int32)}
    if explain:
        fields["explanation"] = np.array([POPULAR] * len(found), dtype=object)
        fields["because"] = found.fields.get("because", np.array([()] * len(found), dtype=object))
    return ItemList(found.idx, found.ids, found.scores, fields)


def item_encoder_for(scorer: Scorer, catalog: ItemCatalog, choice: str = "auto") -> Any:
    """The item encoder a bundle stores: ``auto`` takes the model's own text encoder when it reads
    text, else the lexical encoder when the catalogue has any text, else none."""
    from facetrec.content.item_encoder import TextItemEncoder

    own = getattr(scorer.config, "encoder", None)
    if "text" in scorer.capabilities.needs and isinstance(own, str):
        if choice not in ("auto", own):  # items added later and free text must land in the model's own space
            raise ConfigError(
                f"{type(scorer).__name__} reads item text with its own encoder ({own!r}), so the bundle keeps that "
                f"one; set the model's encoder instead of --encoder {choice!r} (e.g. --param encoder={choice})"
            )
        if own in ("none", ""):
            return None
        tuned = scorer.tuned_item_encoder() if hasattr(scorer, "tuned_item_encoder") else None
        return tuned or TextItemEncoder.from_settings(scorer.config)
    if choice == "none":
        return None
    if choice != "auto":
        return TextItemEncoder(encoder=choice)
    has_text = any(any(str(v).strip() for v in values) for values in catalog.text.values())
    return TextItemEncoder(encoder="lexical") if has_text else None


def fit_recommender(
    dataset: Dataset,
    kind: str = "facet",
    params: dict[str, Any] | None = None,
    ranking: RankConfig | None = None,
    seed: int = 0,
    first_only: bool = False,
    encoder: str = "auto",
    cold_items: int = 0,
) -> Recommender:
    """Train ``kind`` on all of ``dataset`` for serving: each user's last event is held out only to
    stop training early, and every event stays in the known histories. ``encoder`` picks the
    item encoder whose embeddings the bundle stores (:func:`item_encoder_for`); ``cold_items`` is
    :attr:`Recommender.cold_items`."""
    from facetrec.data.filters import first_occurrences
    from facetrec.evaluation.evalset import EvalSet
    from facetrec.scoring.registry import make_scorer

    data = (first_occurrences(dataset.interactions) if first_only else dataset.interactions).sorted()
    if not len(data):
        raise DataError(f"dataset {dataset.name!r} has no events to train on")
    offsets = data.user_offsets()
    counts = np.diff(offsets)
    last = np.zeros(len(data), bool)
    last[offsets[1:][counts >= 3] - 1] = True  # users with a few events keep them all for training
    train = data.take(~last)
    valid = EvalSet(history=train, targets=data.take(last)) if last.any() else None
    scorer = make_scorer(kind, params, seed).fit(train, dataset.catalog, valid)
    item_encoder = item_encoder_for(scorer, dataset.catalog, encoder)
    embeddings = item_encoder.encode(dataset.catalog) if item_encoder is not None else None
    settings = {"seed": seed, "first_only": first_only, "encoder": encoder}
    return Recommender(
        scorer, dataset.catalog, data, ranking, embeddings=embeddings, encoder=item_encoder, fit_settings=settings,
        cold_items=cold_items,
    )  # fmt: skip
