"""The service's state: one Recommender, the event store, and the acknowledged events not yet
folded into the Recommender's histories, behind one lock (the Recommender is not thread-safe).

Writes are durable first (the store commits) and visible next: a stored event joins its user's
*pending* list at once, and the next request for that user passes the pending item ids as
``Query.history``, so recommendations change immediately. Folding events into the histories
rebuilds and re-sorts every event array (tens of ms on a large history), so it happens in the
background every ``fold_every`` events, off the lock, and the result is swapped in. Until then
a pending event counts as a click one second after the user's previous event; once folded, with
its own type and time (from the user's next event on, or after a restart: a cached state is
not re-encoded just because its events were folded).

Encoding a user's history into interest vectors is most of a request's cost (a transformer
pass), so each user's state is cached (LRU) until their next event; a cached request is
retrieval and re-ranking only. Start-up and reload rebuild the states of the most recently
active users in batches (serving/history.py), about ten times cheaper per user than one by one.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facetrec.errors import DataError, UnknownIdError
from facetrec.ranking import Ranker
from facetrec.recommender import Recommender
from facetrec.serving.freetext import TextPlacer
from facetrec.serving.history import StateCache, fold_events, load_bundle, warm_states
from facetrec.serving.store import EventRecord, EventStore
from facetrec.types import Event, ItemList, Query, UserState

log = logging.getLogger(__name__)

TEXT_SEED_ITEMS = 5
"""Items nearest to a free-text statement that form its session history."""


@dataclass(frozen=True)
class Answer:
    """A ranked list as plain rows (item, title, score, interest, label, explanation, because)."""

    rows: list[dict[str, Any]]
    labels: list[str]
    """Interest labels (index = a row's "interest"); empty when not asked or none."""
    seeds: list[str]
    """For free text: the item ids it was matched to."""


class Service:
    """Thread-safe answers from a Recommender kept current with an event store (module docstring)."""

    def __init__(
        self,
        recommender: Recommender,
        store: EventStore,
        bundle: Path | None = None,
        fold_every: int = 256,
        cache_users: int = 50_000,
        states: StateCache | None = None,
        warm_users: int = 10_000,
    ) -> None:
        self.store, self.bundle, self.fold_every = store, bundle, fold_every
        self._rec = recommender
        self._pending: dict[str, list[EventRecord]] = {}
        self._n_pending = 0
        self._lock = threading.Lock()  # guards the Recommender and the pending events
        self._write_lock = threading.Lock()  # one writer: pending lists stay in store-id order
        self._fold_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._states: StateCache = states if states is not None else OrderedDict()  # LRU
        self.cache_users, self.warm_users = cache_users, warm_users
        self._rankers: dict[tuple, Ranker] = {}
        self._text: tuple[Recommender, TextPlacer] | None = None
        self._text_lock = threading.Lock()

    @classmethod
    def open(cls, bundle: str | Path, store: EventStore, fold_every: int = 256, warm_users: int = 10_000) -> Service:
        """Load ``bundle``, fold in the stored events it does not hold yet and encode the states
        of the ``warm_users`` most recently active users: a restart's rebuild."""
        recommender = load_bundle(Path(bundle), store)
        states = warm_states(recommender, warm_users)
        return cls(recommender, store, Path(bundle), fold_every, max(50_000, warm_users), states, warm_users)

    @property
    def recommender(self) -> Recommender:
        return self._rec

    @property
    def pending(self) -> int:
        return self._n_pending

    # ------------------------------------------------------------------ writes

    def validate(self, events: Sequence[EventRecord]) -> None:
        """Raise UnknownIdError / DataError naming the first bad event, before anything is stored."""
        idx = self._rec.items.lookup([e.item_id for e in events])
        if (idx < 0).any():
            bad = int(np.flatnonzero(idx < 0)[0])
            raise UnknownIdError(f"events[{bad}].item: unknown item id {events[bad].item_id!r}")
        for i, e in enumerate(events):
            if e.event not in Event.names():
                raise DataError(f"events[{i}].event: unknown event type {e.event!r}; one of {Event.names()}")

    def add(self, events: Sequence[EventRecord]) -> int:
        """Validate, store durably, then make visible; returns the last stored id."""
        self.validate(events)
        with self._write_lock:
            last = self.store.append(events)
            first = last - len(events) + 1
            with self._lock:
                for offset, e in enumerate(events):
                    stored = EventRecord(e.user_id, e.item_id, e.timestamp, e.event, e.rating, e.review, first + offset)
                    self._pending.setdefault(e.user_id, []).append(stored)
                    self._states.pop(e.user_id, None)
                self._n_pending += len(events)
                due = self._n_pending >= self.fold_every
        if due and not self._fold_lock.locked():
            threading.Thread(target=self.fold, name="facetrec-fold", daemon=True).start()
        return last

    def fold(self) -> int:
        """Fold the pending events into the Recommender's histories; returns how many."""
        if not self._fold_lock.acquire(blocking=False):
            return 0
        try:
            with self._lock:
                rec, history = self._rec, self._rec.history
                batch = sorted((e for events in self._pending.values() for e in events), key=lambda e: e.id)
            if not batch:
                return 0
            folded = fold_events(history, batch)
            upto = batch[-1].id
            with self._lock:
                if self._rec is not rec or rec.history is not history:
                    return 0  # a reload swapped the recommender meanwhile; it holds these events
                rec.history = folded
                self._drop_pending(upto)  # cached states stay: re-encoding every folded user costs more
            return len(batch)
        finally:
            self._fold_lock.release()

    def reload(self, bundle: str | Path | None = None) -> Path:
        """Load ``bundle`` (default: the current one) with the stored events, then swap it in;
        requests keep being answered by the old Recommender until the swap."""
        path = Path(bundle) if bundle is not None else self.bundle
        if path is None:
            raise DataError("reload: this service was not started from a bundle directory; name one")
        with self._reload_lock:
            with self._write_lock:
                upto = self.store.last_id()
            recommender = load_bundle(path, self.store, upto)
            states = warm_states(recommender, self.warm_users)
            with self._lock:
                self._rec, self.bundle, self._states = recommender, path, states
                self._drop_pending(upto)
                for user in self._pending:  # posted during the reload: not in the warmed states
                    states.pop(user, None)
                self._rankers.clear()
        return path

    def _drop_pending(self, upto: int) -> None:
        """Forget pending events with id <= ``upto`` (now in the histories); call under the lock."""
        for user in list(self._pending):
            kept = [e for e in self._pending[user] if e.id > upto]
            if kept:
                self._pending[user] = kept
            else:
                del self._pending[user]
        self._n_pending = sum(len(v) for v in self._pending.values())

    # ------------------------------------------------------------------ reads

    def recommend_user(self, user_id: str, n: int, explain: bool = False, **ranking: Any) -> Answer:
        """Recommender.recommend's user-state path, from the cached state when there is one."""
        with self._serial():
            state = self._state(user_id)
            if state is None:  # no user states (single-vector scorers): the Recommender's own path
                return self._answer(self._user_query(user_id, n), explain, ranking)
            user, seen = state
            n = min(n, len(self._rec.catalog) - len(seen))
            if n < 1:
                raise DataError(f"no items left to recommend: the user has seen all {len(self._rec.catalog)}")
            ranker = self._ranker(ranking)
            items = ranker.rank(user, n, exclude_idx=seen, explain=explain)
            labels = ranker.label_interests(user) if explain else []
            return Answer(self._rows(items, labels), labels, [])

    def recommend_session(self, history: Sequence[str], n: int, explain: bool = False, **ranking: Any) -> Answer:
        with self._serial():
            return self._answer(Query(history=tuple(history), n=n), explain, ranking)

    def recommend_text(self, text: str, n: int, explain: bool = False, **ranking: Any) -> Answer:
        placer, rec = self._placer()
        idx, _ = placer.nearest(text, TEXT_SEED_ITEMS)
        if not len(idx):
            raise DataError("text: no word of it is known to the catalogue's text encoder; try other words")
        seeds = [str(s) for s in rec.items.id_of(idx)]
        with self._serial():
            answer = self._answer(Query(history=tuple(seeds), n=n), explain, ranking)
        return Answer(answer.rows, answer.labels, seeds)

    def interests(self, user_id: str) -> tuple[Any, list[str]] | None:
        """(UserState, labels) or None when the scorer keeps no user states."""
        with self._serial():
            state = self._state(user_id)
            return None if state is None else (state[0], self._rec.ranker().label_interests(state[0]))

    def history(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        """The user's newest ``limit`` events, oldest first, pending ones included."""
        with self._serial():
            rec, pending = self._rec, list(self._pending.get(user_id, ()))
            if user_id not in rec.history.users and not pending:
                raise UnknownIdError(f"unknown user id {user_id!r}")
            rows = []
            if user_id in rec.history.users:
                h = rec.history
                offsets = h.user_offsets()
                u = h.users.index(user_id)
                for r in range(max(offsets[u], offsets[u + 1] - limit), offsets[u + 1]):
                    i = int(h.item_idx[r])
                    rows.append(
                        _event_row(rec, i, int(h.timestamp[r]), Event(int(h.event[r])).name.lower(), h.rating[r])
                    )
            for e in pending:
                rows.append(_event_row(rec, rec.items.index(e.item_id), e.timestamp, e.event, e.rating))
        return rows[-limit:]

    def similar(self, item_id: str, n: int) -> tuple[str, list[dict[str, Any]]]:
        """(the item's title, rows of its nearest items)."""
        with self._serial():
            title = self._rec.catalog.title(self._rec.items.index(item_id))
            return title, self._rows(self._rec.similar(item_id, n), [])

    def users(self, limit: int) -> list[str]:
        """Up to ``limit`` user ids: known users first, then users seen only through posted events."""
        with self._lock:
            known = self._rec.history.users
            out = [str(u) for u in known.ids[:limit]]
            out += [u for u in self._pending if u not in known][: limit - len(out)]
        return out

    def counts(self) -> dict[str, int]:
        with self._lock:
            rec = self._rec
            return {
                "items": len(rec.catalog),
                "users": rec.history.n_users + sum(u not in rec.history.users for u in self._pending),
                "events": len(rec.history) + self._n_pending,
            }

    # ------------------------------------------------------------------ internals

    @contextmanager
    def _serial(self) -> Iterator[None]:
        """The lock, taken by a request thread limited to one OpenMP thread (see _one_thread)."""
        _one_thread()
        with self._lock:
            yield

    def _ranker(self, ranking: dict[str, Any]) -> Ranker:
        """The ranker with per-request settings, reused across requests (reconfiguring validates
        the whole config, which costs more than a cached request's retrieval). Call under the lock."""
        key = tuple(sorted(ranking.items()))
        if key not in self._rankers:
            if len(self._rankers) >= 64:
                self._rankers.clear()
            self._rankers[key] = self._rec.ranker(**ranking)
        return self._rankers[key]

    def _state(self, user_id: str) -> tuple[UserState, np.ndarray] | None:
        """(the user's interest state, every item they have seen), cached until their next event;
        None when the scorer has no user states. Call under the lock."""
        if user_id in self._states:
            self._states.move_to_end(user_id)
            return self._states[user_id]
        query = self._user_query(user_id, 1)
        history = self._rec.user_history(query)
        if not len(history) or not hasattr(self._rec.scorer, "encode_users"):
            return None
        entry = (self._rec.scorer.encode_users(history, np.array([0]))[0], np.unique(history.item_idx))
        self._states[user_id] = entry
        if len(self._states) > self.cache_users:
            self._states.popitem(last=False)
        return entry

    def _user_query(self, user_id: str, n: int) -> Query:
        pending = self._pending.get(user_id, ())
        if user_id not in self._rec.history.users and not pending:
            raise UnknownIdError(f"unknown user id {user_id!r}")
        return Query(user_id=user_id, history=tuple(e.item_id for e in pending), n=n)

    def _answer(self, query: Query, explain: bool, ranking: dict[str, Any]) -> Answer:
        items = self._rec.recommend(query, explain=explain, **ranking)  # (reconfigures per call: rare paths)
        labels: list[str] = []
        if explain and len(query.history) + (query.user_id is not None) > 0:
            found = self._rec.interests(query)
            labels = found[1] if found else []
        return Answer(self._rows(items, labels), labels, [])

    def _rows(self, items: ItemList, labels: list[str]) -> list[dict[str, Any]]:
        rec, fields = self._rec, items.fields
        interest = fields.get("interest", np.full(len(items), -1))
        rows = []
        for r, idx in enumerate(items.idx):
            j = int(interest[r])
            row = {
                "item": str(items.ids[r]),
                "title": rec.catalog.title(int(idx)),
                "score": float(items.scores[r]),
                "interest": j,
                "label": labels[j] if 0 <= j < len(labels) else None,
            }
            if "explanation" in fields:
                row["explanation"] = str(fields["explanation"][r])
                row["because"] = [str(rec.items.id_of(int(b))) for b in fields.get("because", [()] * len(items))[r]]
            rows.append(row)
        return rows

    def _placer(self) -> tuple[TextPlacer, Recommender]:
        """The free-text placer of the current Recommender, built once per bundle (slow: it
        re-encodes the catalogue), outside the main lock."""
        rec = self._rec
        with self._text_lock:
            if self._text is None or self._text[0] is not rec:
                self._text = (rec, TextPlacer.for_scorer(rec.scorer, rec.catalog))
            return self._text[1], rec


_local = threading.local()


def _one_thread() -> None:
    """Limit faiss to one OpenMP thread in the calling thread. OpenMP's thread count is per
    thread, so the server's setting does not reach FastAPI's worker threads, and there faiss's
    thread team spinning on a busy 2-core machine cost ten times the CPU of a cached request."""
    if not getattr(_local, "limited", False):
        import faiss

        faiss.omp_set_num_threads(1)
        _local.limited = True


def _event_row(rec: Recommender, idx: int, timestamp: int, event: str, rating: Any) -> dict[str, Any]:
    rating = None if rating is None or not np.isfinite(rating) else float(rating)
    item_id = str(rec.items.id_of(idx))
    return {"item": item_id, "title": rec.catalog.title(idx), "event": event, "timestamp": timestamp, "rating": rating}
