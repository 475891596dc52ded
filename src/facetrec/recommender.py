"""One plain class composing the stages: histories -> scorer (user states) -> ranker -> a list.

A :class:`Recommender` holds a fitted scorer, the item catalogue, the known users' event
histories and a :class:`~facetrec.ranking.Ranker`. ``recommend(Query)`` serves a known user,
a new user given only a raw history, and an anonymous session the same way: a history in, a
ranked, filtered, diversified and (on request) explained :class:`ItemList` out. Events added
with :meth:`add_events` change the next recommendation without retraining.

A bundle on disk is a directory: ``manifest.json`` (format, version, ranking config),
``scorer/`` (the scorer's own manifest and safetensors) and ``data/`` (catalogue and known
histories as a dataset directory). No pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from facetrec import __version__
from facetrec.component import Component
from facetrec.config import from_dict, to_dict
from facetrec.data.dataset import Dataset
from facetrec.errors import ConfigError, DataError, UnknownIdError
from facetrec.ids import Vocabulary
from facetrec.ranking import RankConfig, Ranker
from facetrec.scoring.base import Scorer
from facetrec.types import Event, Interactions, ItemCatalog, ItemList, Query, UserState

BUNDLE_FORMAT = "facetrec-bundle"
POPULAR = "Popular right now"


class Recommender:
    """A fitted scorer, the catalogue, known histories and a ranker, ready to answer queries."""

    def __init__(
        self, scorer: Scorer, catalog: ItemCatalog, history: Interactions, ranking: RankConfig | None = None
    ) -> None:
        scorer._require_fitted("Recommender")
        if history.items != catalog.items or len(catalog) != scorer.n_items_:
            raise DataError(
                f"Recommender: scorer ({scorer.n_items_} items), catalogue ({len(catalog)}) and histories "
                f"({history.n_items}) must share one item vocabulary"
            )
        self.scorer, self.catalog = scorer, catalog
        self.history = history.sorted()
        self.ranking = ranking or RankConfig()
        self._item_vectors = self._vectors()
        self._ranker: Ranker | None = None

    # ------------------------------------------------------------------ histories

    @property
    def history(self) -> Interactions:
        """Known users' events, sorted by user then time."""
        return self._history

    @history.setter
    def history(self, value: Interactions) -> None:
        self._history = value
        self._offsets: np.ndarray | None = None  # per-user row ranges, counted on first use

    @property
    def items(self) -> Vocabulary:
        return self.catalog.items

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
        item_idx = self.items.lookup(item_ids)
        if (item_idx < 0).any():
            raise UnknownIdError(f"unknown item id {item_ids[int(np.flatnonzero(item_idx < 0)[0])]!r}")
        codes = np.full(n, Event.CLICK, np.int8) if events is None else np.array([_event_code(e) for e in events])
        users = self.history.users.extend(user_ids)
        old = self.history
        self.history = Interactions(
            np.r_[old.user_idx, users.lookup(user_ids)],
            np.r_[old.item_idx, item_idx],
            np.r_[old.timestamp, np.asarray(timestamps, np.int64)],
            users,
            self.items,
            np.r_[old.event, codes],
            np.r_[old.rating, np.full(n, np.nan) if ratings is None else np.asarray(ratings, np.float32)],
            np.r_[old.weight, np.ones(n, np.float32)],
        ).sorted()
        return n

    def user_history(self, query: Query) -> Interactions:
        """The query's events as a one-user history: the known user's events, then ``query.history``."""
        if query.user_id is not None and query.user_id not in self.history.users and not query.history:
            raise UnknownIdError(f"unknown user id {query.user_id!r}; pass their history in the query instead")
        rows = np.zeros(0, np.int64)
        if query.user_id is not None and query.user_id in self.history.users:
            if self._offsets is None:  # counting every event per request was a hot spot in serving
                self._offsets = self.history.user_offsets()
            offsets = self._offsets
            u = self.history.users.index(query.user_id)
            rows = np.arange(offsets[u], offsets[u + 1])
        known = self.history.take(rows)
        extra = self.items.lookup(list(query.history))
        if (extra < 0).any():
            raise UnknownIdError(f"unknown item id {query.history[int(np.flatnonzero(extra < 0)[0])]!r} in history")
        last = int(known.timestamp.max()) if len(known) else 0
        now = query.time if query.time is not None else last + len(extra)
        times = np.maximum(now - len(extra) + 1 + np.arange(len(extra)), last)
        name = query.user_id or "anonymous"
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
        (no events) or the scorer has no user states (the single-vector baselines)."""
        history = self.user_history(query)
        if not len(history) or not hasattr(self.scorer, "encode_users"):
            return None
        state = self.scorer.encode_users(history, np.array([0]))[0]
        return state, self.ranker().label_interests(state)

    def recommend(self, query: Query, explain: bool = False, **ranking: Any) -> ItemList:
        """A ranked list for ``query``; ``ranking`` overrides fields of the RankConfig for this call
        (e.g. ``diversity="mmr", lam=0.5``). Items in the history or ``query.exclude`` never appear."""
        history = self.user_history(query)
        exclude = self.items.lookup(list(query.exclude))
        if (exclude < 0).any():
            raise UnknownIdError(f"unknown item id {query.exclude[int(np.flatnonzero(exclude < 0)[0])]!r} in exclude")
        exclude = np.union1d(exclude, history.item_idx).astype(np.int32)
        n = min(query.n, len(self.catalog) - len(exclude))
        if n < 1:
            raise DataError(f"no items left to recommend: the user has seen or excluded all {len(self.catalog)}")
        ranker = self.ranker(**ranking)
        now = float(query.time) if query.time is not None else None
        if not len(history):
            scores = self.scorer.score(history, np.array([0]))[0]
            found = ranker.rank_scores(scores, n, exclude_idx=exclude, now=now)
            fields = {"interest": np.full(len(found), -1, np.int32)}
            if explain:
                fields["explanation"] = np.array([POPULAR] * len(found), dtype=object)
            return ItemList(found.idx, found.ids, found.scores, fields)
        if hasattr(self.scorer, "encode_users"):
            state = self.scorer.encode_users(history, np.array([0]))[0]
            return ranker.rank(state, n, exclude_idx=exclude, now=now, explain=explain)
        scores = self.scorer.score(history, np.array([0]))[0]
        return ranker.rank_scores(scores, n, exclude_idx=exclude, now=now)

    def similar(self, item_id: str, n: int = 10) -> ItemList:
        """Items nearest to ``item_id`` by cosine of the item vectors the scorer ranks with."""
        idx = self.items.index(item_id)
        unit = self._item_vectors / np.maximum(np.linalg.norm(self._item_vectors, axis=1, keepdims=True), 1e-12)
        scores = unit @ unit[idx]
        return self.ranker(diversity="none").rank_scores(scores, min(n, len(self.catalog) - 1), exclude_idx=[idx])

    def ranker(self, **overrides: Any) -> Ranker:
        """The ranker, fitted once on the item vectors; ``overrides`` change re-ranking settings for
        one call without refitting the index. (Trending counts are those of the histories at fit.)"""
        if self._ranker is None:
            self._ranker = Ranker(self.ranking).fit(self._item_vectors, self.catalog, self.history)
        return self._ranker.reconfigure(**overrides) if overrides else self._ranker

    def _vectors(self) -> np.ndarray:
        """Item vectors: the scorer's own when it has them, else its item factors or content."""
        for name in ("item_vectors", "item_factors"):
            source = getattr(self.scorer, name, None)
            if callable(source):
                return np.asarray(source(), np.float32)
        vectors = getattr(self.scorer, "item_vectors_", None)
        if vectors is None:
            raise ConfigError(
                f"Recommender: {type(self.scorer).__name__} exposes no item vectors for diversity and similar "
                "items; use the facet, sasrec-text or content scorer"
            )
        return np.asarray(vectors, np.float32)

    # ------------------------------------------------------------------ bundles

    def save(self, directory: str | Path) -> Path:
        """Write the bundle (scorer, catalogue, known histories, ranking config); returns its manifest."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        self.scorer.save(root / "scorer")
        Dataset("bundle", self.history, self.catalog).save(root / "data")
        manifest = {"format": BUNDLE_FORMAT, "facetrec_version": __version__, "ranking": to_dict(self.ranking)}
        path = root / "manifest.json"
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Recommender:
        root = Path(directory)
        path = root / "manifest.json"
        if not path.is_file():
            raise ConfigError(f"{root}: no manifest.json; is this a bundle written by `facetrec train`?")
        manifest = json.loads(path.read_text())
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
        return cls(scorer, data.catalog, data.interactions, ranking)


def fit_recommender(
    dataset: Dataset,
    kind: str = "facet",
    params: dict[str, Any] | None = None,
    ranking: RankConfig | None = None,
    seed: int = 0,
    first_only: bool = False,
) -> Recommender:
    """Train ``kind`` on all of ``dataset`` for serving: each user's last event is held out only to
    stop training early, and every event stays in the known histories."""
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
    return Recommender(scorer, dataset.catalog, data, ranking)


def _event_code(name: str) -> int:
    names = Event.names()
    if name not in names:
        raise DataError(f"unknown event type {name!r}; choose one of {', '.join(names)}")
    return names.index(name)
