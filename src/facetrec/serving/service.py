"""The service's state in one worker process: a Recommender kept current with the shared event
store, behind one lock (the Recommender is not thread-safe).

Every answer comes from the Recommender's own methods (``recommend``, ``interests``,
``free_text``, ``similar``); the service adds no ranking and no cache of its own (the
Recommender caches user states and drops a user's state when their events arrive).

A posted event is validated against the catalogue, committed to the store (durable before the
answer), then appended to the Recommender. Appends always come from the store, in arrival
order: before each request the worker reads the events stored after the last one it applied
(``store.since``, an index range scan; usually none), whether this worker or another stored
them, so an event acknowledged by any worker is in every worker's next answer. The same check
reads the bundle generation (``store.generation``): when another worker was told to reload, this
one loads the published bundle in a background thread and swaps it in, answering from the old
one meanwhile.

No request waits forever: one that cannot take the lock within ``lock_timeout`` seconds raises
:class:`Busy` (the API answers 503 with Retry-After), and a bundle that cannot be loaded is a
ConfigError saying why (422) while the current one keeps serving.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facetrec.errors import ConfigError, DataError, FacetrecError, UnknownIdError
from facetrec.history import EventRecord, check_events
from facetrec.recommender import Recommender, list_rows
from facetrec.serving.bundle import item_catalog, load_bundle, replay, replay_items
from facetrec.serving.store import ServiceStore, StoreUnavailable
from facetrec.summaries import Summarizer, evidence
from facetrec.types import Event, ItemList, Query

log = logging.getLogger(__name__)

TEXT_SEED_ITEMS = 5
"""Items nearest to a free-text statement that form its session history."""
LOCK_TIMEOUT = 10.0
"""Seconds a request waits for the Recommender (or a reload for the one before it) before it is refused."""


class Busy(RuntimeError):
    """The Recommender could not be reached within the lock timeout: retry later (HTTP 503)."""


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
        store: ServiceStore,
        bundle: Path | None = None,
        applied: int = 0,
        generation: int = 0,
        warm_users: int = 10_000,
        lock_timeout: float = LOCK_TIMEOUT,
        summarizer: Summarizer | None = None,
    ) -> None:
        self.store, self.bundle, self.warm_users, self.lock_timeout = store, bundle, warm_users, lock_timeout
        self.summarizer = summarizer
        self._rec = recommender
        self._applied = applied  # arrival number of the newest stored event in the Recommender
        self._items_applied = 0  # ... and of the newest stored catalogue item (items it holds are skipped)
        self._generation = generation  # the published bundle generation served, or being loaded
        self._lock = threading.Lock()  # guards the Recommender
        self._reload_lock = threading.Lock()  # one bundle load at a time

    @classmethod
    def open(
        cls,
        bundle: str | Path,
        store: ServiceStore,
        warm_users: int = 10_000,
        generation: int | None = None,
        summarizer: Summarizer | None = None,
    ) -> Service:
        """Load ``bundle`` with the stored events it lacks and warm the states of the
        ``warm_users`` most recently active users: a start's or restart's rebuild. ``generation``:
        the one ``bundle`` was published as (default: the newest, read before loading, so a
        bundle published meanwhile is followed on the first request); ``summarizer``: names and
        sentences for interests from a language model."""
        if generation is None:
            generation = store.generation()
        recommender, applied = load_bundle(bundle, store, warm_users)
        return cls(recommender, store, Path(bundle), applied, generation, warm_users, summarizer=summarizer)

    @property
    def recommender(self) -> Recommender:
        return self._rec

    @property
    def applied(self) -> int:
        """Arrival number of the newest stored event this worker has applied."""
        return self._applied

    # ------------------------------------------------------------------ writes

    def add(self, events: Sequence[EventRecord]) -> tuple[int, int]:
        """Validate, store durably, then apply; returns (events added, arrival number of the
        batch's last event). Events whose id is already stored are skipped (a retried batch)."""
        with self._serial():
            self._sync()  # items another worker added may be named
            check_events(events, self._rec.items)
        added, last = self.store.write(events)
        with self._serial():
            self._sync()
        return added, last

    def add_items(self, items: Sequence[tuple[str, dict]]) -> tuple[int, int]:
        """Add catalogue items while serving: stored durably (ids already stored or in the
        catalogue are skipped), then added to the Recommender, which encodes only them and, for
        a model that scores cold items, makes them recommendable at once. Returns (items added,
        catalogue size)."""
        with self._serial():
            self._sync()
            fresh = [(item_id, fields) for item_id, fields in items if item_id not in self._rec.items]
        item_catalog(fresh)  # validate before storing: a bad row is a 422, not a stored poison pill
        added = self.store.add_items(fresh)
        with self._serial():
            self._sync()
            return added, len(self._rec.catalog)

    def reload(self, bundle: str | Path | None = None) -> Path:
        """Load ``bundle`` (default: the current one) with the stored events after its watermark,
        warm its states, publish it to the other workers and swap it in; requests are answered by
        the old Recommender until the swap."""
        path = Path(bundle) if bundle is not None else self.bundle
        if path is None:
            raise DataError("reload: this service was not started from a bundle directory; name one")
        if not self._reload_lock.acquire(timeout=self.lock_timeout):
            raise Busy(f"another bundle is being loaded; not reloaded within {self.lock_timeout:g} s")
        try:
            try:
                recommender, applied = load_bundle(path, self.store, self.warm_users)
            except StoreUnavailable:
                raise  # the store, not the bundle: a 503
            except FacetrecError as exc:
                raise ConfigError(f"reload refused, still serving {self.bundle}: {exc}") from None
            except Exception as exc:  # a bundle whose files check out but whose contents do not fit
                log.exception("could not load %s", path)
                raise ConfigError(
                    f"reload refused, still serving {self.bundle}: {path} could not be loaded ({type(exc).__name__})"
                ) from None
            with self._lock:
                self._generation = self.store.publish(path)
                self._swap(recommender, applied, path)
        finally:
            self._reload_lock.release()
        return path

    # ------------------------------------------------------------------ reads

    def recommend(self, query: Query, explain: bool = False, **ranking: Any) -> Answer:
        """``Recommender.recommend`` as rows, with the interest labels when ``explain``."""
        with self._serial():
            self._sync()
            return self._answer(query, explain, ranking)

    def recommend_text(self, text: str, n: int, explain: bool = False, **ranking: Any) -> Answer:
        """Free text as an anonymous session: the items nearest to it are its history."""
        with self._serial():
            self._sync()
            rec = self._rec
            idx = rec.free_text(text, TEXT_SEED_ITEMS)
            if not len(idx):
                raise DataError("text: no word of it is known to the catalogue's text encoder; try other words")
            seeds = [str(s) for s in rec.items.id_of(idx)]
            answer = self._answer(Query(history=tuple(seeds), n=n), explain, ranking)
        return Answer(answer.rows, answer.labels, seeds)

    def interests(self, user_id: str, examples: int = 3) -> list[dict[str, Any]]:
        """The user's interests: label, weight and the ``examples`` history items each attends to
        most; empty when the user has no events or the model no interest vectors. With a
        summarizer each has a ``summary`` too, asked for after the lock is released, so a slow
        language model holds up this request only (for at most its budget), never the others."""
        with self._serial():
            self._sync()
            rec = self._rec
            found = rec.interests(Query(user_id=user_id))
            if found is None:
                return []
            state, labels = found
            wanted = evidence(state, labels, rec.catalog) if self.summarizer is not None else []
            out = []
            for j, label in enumerate(labels):
                top = [int(p) for p in np.argsort(-state.attention[j], kind="stable")[:examples]]
                rows = [
                    {
                        "item": str(rec.items.id_of(int(state.history_idx[p]))),
                        "title": rec.catalog.title(int(state.history_idx[p])),
                        "attention": float(state.attention[j, p]),
                    }
                    for p in top
                ]
                out.append({"label": label, "weight": float(state.weights[j]), "examples": rows})
        if self.summarizer is not None:
            for row, summary in zip(out, self.summarizer.summarize(wanted), strict=True):
                row["summary"] = summary.as_dict()
        return out

    def history(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        """The user's newest ``limit`` events, oldest first."""
        with self._serial():
            self._sync()
            rec = self._rec
            if user_id not in rec.histories:
                raise UnknownIdError(f"unknown user id {user_id!r}")
            h = rec.histories.user_events(user_id, limit)
            return [
                {
                    "item": str(rec.items.id_of(int(h.item_idx[r]))),
                    "title": rec.catalog.title(int(h.item_idx[r])),
                    "event": Event(int(h.event[r])).name.lower(),
                    "timestamp": int(h.timestamp[r]),
                    "rating": float(h.rating[r]) if np.isfinite(h.rating[r]) else None,
                }
                for r in range(len(h))
            ]

    def similar(self, item_id: str, n: int) -> tuple[str, list[dict[str, Any]]]:
        """(the item's title, rows of its nearest items)."""
        with self._serial():
            self._sync()
            rec = self._rec
            return rec.catalog.title(rec.items.index(item_id)), list_rows(rec, rec.similar(item_id, n), [])

    def users(self, limit: int) -> list[str]:
        """Up to ``limit`` user ids: the bundle's users first, then those seen only through events."""
        with self._serial():
            self._sync()
            return self._rec.histories.user_ids(limit)

    def counts(self) -> dict[str, Any]:
        with self._serial():
            self._sync()
            rec = self._rec
            return {
                "bundle": str(self.bundle),
                "items": len(rec.catalog),
                "users": rec.histories.n_users,
                "events": len(rec.histories),
                "applied": self._applied,
                "worker": os.getpid(),
            }

    # ------------------------------------------------------------------ internals

    @contextmanager
    def _serial(self) -> Iterator[None]:
        """The lock, taken by a request thread limited to one OpenMP thread (see _one_thread),
        within ``lock_timeout`` seconds (else :class:`Busy`)."""
        _one_thread()
        if not self._lock.acquire(timeout=self.lock_timeout):
            raise Busy(f"the recommender is busy: no answer within {self.lock_timeout:g} s; retry shortly")
        try:
            yield
        finally:
            self._lock.release()

    def _sync(self) -> None:
        """Apply the events stored since the last one applied, and follow a bundle another worker
        published (in the background). Call under the lock."""
        generation = self.store.generation()
        if generation > self._generation:
            self._generation = generation
            threading.Thread(target=self._follow, args=(generation,), name="facetrec-reload", daemon=True).start()
        self._items_applied = replay_items(self._rec, self.store, self._items_applied)
        self._applied = replay(self._rec, self.store, self._applied)

    def _follow(self, generation: int) -> None:
        """Load the bundle published as ``generation`` and swap it in, unless a newer one is
        published meanwhile (its own thread follows it); a failure is logged and the current
        bundle stays."""
        with self._reload_lock:
            published, path = self.store.published()
            if published != generation or path is None:
                return
            try:
                recommender, applied = load_bundle(path, self.store, self.warm_users)
            except Exception:
                log.exception(
                    "could not load the bundle published as generation %d (%s); serving %s",
                    generation,
                    path,
                    self.bundle,
                )
                return
            with self._lock:
                if self._generation == generation:
                    self._swap(recommender, applied, path)

    def _swap(self, recommender: Recommender, applied: int, path: Path) -> None:
        """Catch ``recommender`` up with the store and make it the one answering. Call under the lock."""
        self._items_applied = replay_items(recommender, self.store, 0)
        self._applied = replay(recommender, self.store, applied)
        self._rec, self.bundle = recommender, path
        log.info("serving %s (events up to %d)", path, self._applied)

    def _answer(self, query: Query, explain: bool, ranking: dict[str, Any]) -> Answer:
        rec = self._rec
        items: ItemList = rec.recommend(query, explain=explain, **ranking)
        labels: list[str] = []
        if explain:
            found = rec.interests(query)
            labels = found[1] if found else []
        return Answer(list_rows(rec, items, labels), labels, [])


_local = threading.local()


def _one_thread() -> None:
    """Limit faiss to one OpenMP thread in the calling thread. OpenMP's thread count is per
    thread, so the server's setting does not reach FastAPI's worker threads, and there faiss's
    thread team spinning on a busy 2-core machine cost ten times the CPU of a cached request."""
    if not getattr(_local, "limited", False):
        import faiss

        faiss.omp_set_num_threads(1)
        _local.limited = True
