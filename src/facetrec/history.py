"""Where user histories live: the :class:`HistoryStore` interface and the in-memory store.

A recommender reads one user's recent events per request and, for retraining or batch
evaluation, all of them. ``HistoryStore`` hides where they live: :class:`MemoryHistoryStore`
here (what a :class:`~facetrec.recommender.Recommender` reads per request), and the service's
durable logs shared by its worker processes, :class:`~facetrec.serving.store.SQLiteHistoryStore`
and :class:`~facetrec.serving.postgres.PostgresHistoryStore` (what else the service needs from
them is :class:`~facetrec.serving.store.ServiceStore`). All pass the same contract tests
(``tests/test_history_store.py``).

Appending is idempotent by the client's event id (:attr:`EventRecord.id`), so a client may retry
a batch, and costs time proportional to the events added, never a re-sort of the log: the
in-memory store keeps the bundle's sorted log as a base and each user's newer events in a list
of their own, merged only for that user when they are read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facetrec.errors import DataError, UnknownIdError
from facetrec.ids import Vocabulary
from facetrec.types import Event, Interactions


@dataclass(frozen=True)
class EventRecord:
    """One event as a client sent it."""

    user_id: str
    item_id: str
    timestamp: int
    event: str = "click"
    rating: float | None = None
    review: str | None = None
    id: str | None = None
    """The client's id for the event: a store skips an event whose id it already holds, so a
    retried batch counts once (None: no id; the event is always added)."""
    seq: int = 0
    """Its arrival number in a durable store (0: not stored there); later arrivals, higher numbers."""


class HistoryStore(Protocol):
    """What the pipeline needs from wherever user histories live."""

    def append(self, events: Sequence[EventRecord]) -> int:
        """Add ``events``, all or none: a bad event type (or an unknown item, where the store knows
        the catalogue) is an error naming it, raised before anything is added. Events whose ``id``
        the store already holds, also from earlier in the batch, are skipped. Returns how many were added."""
        ...

    def recent(self, user_id: str, limit: int | None = None) -> list[EventRecord]:
        """The user's newest ``limit`` events (all by default), oldest first, equal times in
        arrival order; empty for an unknown user."""
        ...

    def events(self) -> Iterator[EventRecord]:
        """Every event, in arrival order: what retraining reads."""
        ...

    def __contains__(self, user_id: object) -> bool: ...


def check_events(events: Sequence[EventRecord], items: Vocabulary | None = None) -> np.ndarray:
    """Raise DataError / UnknownIdError naming the first bad event: an unknown event type, an id
    that is not a non-empty string, or (given ``items``) an unknown item id. Returns the events'
    item indices in ``items`` (empty without it)."""
    names = Event.names()
    for i, e in enumerate(events):
        if e.event not in names:
            raise DataError(f"events[{i}].event: unknown event type {e.event!r}; one of {', '.join(names)}")
        if e.id is not None and (not isinstance(e.id, str) or not e.id):
            raise DataError(f"events[{i}].id: must be a non-empty string (or absent), got {e.id!r}")
        for name in ("user_id", "item_id", "review", "id"):
            if "\x00" in str(getattr(e, name) or ""):  # PostgreSQL's text cannot hold it: refused by every store
                raise DataError(f"events[{i}].{name}: contains a NUL character")
    if items is None:
        return np.zeros(0, np.int32)
    item_idx = items.lookup([e.item_id for e in events])
    if (item_idx < 0).any():
        bad = int(np.flatnonzero(item_idx < 0)[0])
        raise UnknownIdError(f"events[{bad}].item: unknown item id {events[bad].item_id!r}")
    return item_idx


class MemoryHistoryStore:
    """Histories in memory: a sorted base log plus each user's newer events (module docstring).

    Besides the :class:`HistoryStore` methods it gives the array views a Recommender reads:
    :meth:`user_events` (one user) and :meth:`interactions` (everything, sorted).
    """

    def __init__(self, base: Interactions) -> None:
        self._base = base.sorted()
        self._offsets = self._base.user_offsets()
        self.items = base.items
        self._new_users: dict[str, int] = {}  # users first seen after the base, in arrival order
        self._added: dict[int, list[tuple]] = {}  # user index -> rows (item, time, event, rating, review, arrival)
        self._log: list[EventRecord] = []  # appended events in arrival order (a row's ``arrival`` indexes it)
        self._ids: set[str] = set()
        self._merged: Interactions | None = self._base

    def __contains__(self, user_id: object) -> bool:
        return str(user_id) in self._base.users or str(user_id) in self._new_users

    def __len__(self) -> int:
        return len(self._base) + len(self._log)

    @property
    def n_users(self) -> int:
        return self._base.n_users + len(self._new_users)

    def user_ids(self, limit: int | None = None) -> list[str]:
        """Up to ``limit`` user ids: the base log's first, then users first seen later."""
        known = [str(u) for u in self._base.users.ids[:limit]]
        room = None if limit is None else max(limit - len(known), 0)
        return known + list(self._new_users)[:room]

    def extend_items(self, items: Vocabulary) -> None:
        """Adopt a catalogue that grew (new items appended; existing indices unchanged)."""
        if len(items) < len(self.items) or not np.array_equal(items.ids[: len(self.items)], self.items.ids):
            raise DataError("extend_items: the new item vocabulary must start with the current one")
        self.items, self._merged = items, None
        self._base = Interactions(
            self._base.user_idx, self._base.item_idx, self._base.timestamp, self._base.users, items,
            self._base.event, self._base.rating, self._base.weight, self._base.review,
        )  # fmt: skip

    def append(self, events: Sequence[EventRecord]) -> int:
        item_idx = check_events(events, self.items)
        names = Event.names()
        added = 0
        for e, item in zip(events, item_idx, strict=True):
            if e.id is not None:
                if e.id in self._ids:
                    continue
                self._ids.add(e.id)
            rating = np.nan if e.rating is None else float(e.rating)
            row = (int(item), int(e.timestamp), names.index(e.event), rating, e.review, len(self._log))
            self._added.setdefault(self._user_index(e.user_id), []).append(row)
            self._log.append(e)
            added += 1
        if added:
            self._merged = None
        return added

    def recent(self, user_id: str, limit: int | None = None) -> list[EventRecord]:
        u = self._user_index(str(user_id), create=False)
        if u is None:
            return []
        out = [self._base_record(r) for r in range(*self._offsets[u : u + 2])] if u < self._base.n_users else []
        out += [self._log[row[5]] for row in self._added.get(u, [])]
        out.sort(key=lambda e: e.timestamp)  # stable: equal times stay in arrival order
        return out if limit is None else out[max(len(out) - limit, 0) :]

    def events(self) -> Iterator[EventRecord]:
        for r in range(len(self._base)):
            yield self._base_record(r)
        yield from self._log

    def user_events(self, user_id: str, limit: int | None = None) -> Interactions:
        """The user's newest ``limit`` events as a one-user log, ordered as :meth:`recent`."""
        user_id = str(user_id)
        u = self._user_index(user_id, create=False)
        if u is None:
            base = self._base.take(np.zeros(0, np.int64))
        else:
            lo, hi = (self._offsets[u], self._offsets[u + 1]) if u < self._base.n_users else (0, 0)
            base = self._base.take(np.arange(lo, hi))
        extra = self._added.get(u, []) if u is not None else []
        item = np.r_[base.item_idx, np.array([r[0] for r in extra], np.int32)]
        time = np.r_[base.timestamp, np.array([r[1] for r in extra], np.int64)]
        event = np.r_[base.event, np.array([r[2] for r in extra], np.int8)]
        rating = np.r_[base.rating, np.array([r[3] for r in extra], np.float32)]
        weight = np.r_[base.weight, np.ones(len(extra), np.float32)]
        review = None
        if base.review is not None or any(r[4] for r in extra):
            old = base.review if base.review is not None else np.full(len(base), None, object)
            review = np.r_[old, np.array([r[4] for r in extra], object)]
        order = np.argsort(time, kind="stable")  # later arrivals keep their place among equal times
        if limit is not None:
            order = order[max(len(order) - limit, 0) :]
        return Interactions(
            np.zeros(len(order), np.int32), item[order], time[order], Vocabulary([user_id], "user"), self.items,
            event[order], rating[order], weight[order], None if review is None else review[order],
        )  # fmt: skip

    def interactions(self) -> Interactions:
        """Every event, sorted by user then time: for retraining and batch evaluation."""
        if self._merged is not None:
            return self._merged
        users = Vocabulary(np.concatenate([self._base.users.ids, list(self._new_users)]), "user")
        if not self._added:
            merged = Interactions(
                self._base.user_idx, self._base.item_idx, self._base.timestamp, users, self.items,
                self._base.event, self._base.rating, self._base.weight, self._base.review,
            )  # fmt: skip
        else:
            rows = [(u, *r) for u, extra in self._added.items() for r in extra]
            n = len(rows)
            b = self._base
            review = None
            if b.review is not None or any(r[5] for r in rows):
                old = b.review if b.review is not None else np.full(len(b), None, object)
                review = np.r_[old, np.array([r[5] for r in rows], object)]
            merged = Interactions(
                np.r_[b.user_idx, np.array([r[0] for r in rows], np.int32)],
                np.r_[b.item_idx, np.array([r[1] for r in rows], np.int32)],
                np.r_[b.timestamp, np.array([r[2] for r in rows], np.int64)],
                users,
                self.items,
                np.r_[b.event, np.array([r[3] for r in rows], np.int8)],
                np.r_[b.rating, np.array([r[4] for r in rows], np.float32)],
                np.r_[b.weight, np.ones(n, np.float32)],
                review,
            ).sorted()
        self._merged = merged
        return merged

    def _base_record(self, r: int) -> EventRecord:
        b = self._base
        rating = float(b.rating[r])
        return EventRecord(
            str(b.users.id_of(int(b.user_idx[r]))), str(self.items.id_of(int(b.item_idx[r]))), int(b.timestamp[r]),
            Event(int(b.event[r])).name.lower(), rating if np.isfinite(rating) else None,
            None if b.review is None else b.review[r],
        )  # fmt: skip

    def _user_index(self, user_id: str, create: bool = True) -> int | None:
        user_id = str(user_id)
        position = self._base.users.lookup([user_id])[0]
        if position >= 0:
            return int(position)
        if user_id not in self._new_users:
            if not create:
                return None
            self._new_users[user_id] = self._base.n_users + len(self._new_users)
        return self._new_users[user_id]
