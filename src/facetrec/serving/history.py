"""From a bundle and the event store to a live Recommender: fold stored events into the
histories, remember (``serving.json`` in a bundle) which events a bundle already holds, and
rebuild user states in batches so a restarted service answers its users from the cache.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facetrec.recommender import Recommender
from facetrec.serving.store import EventRecord, EventStore
from facetrec.types import Event, Interactions

log = logging.getLogger(__name__)

WATERMARK = "serving.json"
"""File in a bundle written by ``facetrec retrain``: the store and last event id it holds."""
WARM_BATCH = 256
"""Users encoded per batch when rebuilding states (a batch costs about 1 ms per user, a single
user about 13 ms, on the benchmark's 2 cores)."""

StateCache = OrderedDict  # user id -> (UserState, seen item indices), least recently used first


def read_watermark(bundle: str | Path, store: EventStore) -> int:
    """Id of the last event of ``store`` already inside ``bundle`` (0: none)."""
    path = Path(bundle) / WATERMARK
    if not path.is_file():
        return 0
    mark = json.loads(path.read_text())
    if mark.get("events") != store.location:
        log.warning(
            "%s was built from %s, not %s: folding every stored event", path, mark.get("events"), store.location
        )
        return 0
    return int(mark.get("last_event_id", 0))


def write_watermark(bundle: str | Path, store: EventStore, last_event_id: int) -> Path:
    path = Path(bundle) / WATERMARK
    path.write_text(json.dumps({"events": store.location, "last_event_id": int(last_event_id)}, indent=2) + "\n")
    return path


def fold_events(history: Interactions, events: Sequence[EventRecord]) -> Interactions:
    """``history`` plus ``events`` (with their types, ratings and reviews), sorted; events on items
    outside the catalogue (possible after swapping bundles) are skipped with a warning."""
    if not events:
        return history
    item_idx = history.items.lookup([e.item_id for e in events])
    known = item_idx >= 0
    if not known.all():
        log.warning(
            "skipped %d stored events on items not in this bundle's catalogue (first: %r)",
            int((~known).sum()),
            events[int(np.flatnonzero(~known)[0])].item_id,
        )
        events = [e for e, ok in zip(events, known, strict=True) if ok]
        item_idx = item_idx[known]
    users = history.users.extend([e.user_id for e in events])
    names = Event.names()
    review = None
    if history.review is not None or any(e.review for e in events):
        old = history.review if history.review is not None else np.full(len(history), None, object)
        review = np.r_[old, np.array([e.review for e in events], object)]
    return Interactions(
        np.r_[history.user_idx, users.lookup([e.user_id for e in events])],
        np.r_[history.item_idx, item_idx],
        np.r_[history.timestamp, np.array([e.timestamp for e in events], np.int64)],
        users,
        history.items,
        np.r_[history.event, np.array([names.index(e.event) for e in events], np.int8)],
        np.r_[history.rating, np.array([np.nan if e.rating is None else e.rating for e in events], np.float32)],
        np.r_[history.weight, np.ones(len(events), np.float32)],
        review,
    ).sorted()


def load_bundle(bundle: Path, store: EventStore, upto: int | None = None) -> Recommender:
    """The bundle's Recommender with the stored events it lacks folded in (up to id ``upto``)
    and its ranker fitted."""
    recommender = Recommender.load(bundle)
    after = read_watermark(bundle, store)
    events = [e for e in store.since(after) if upto is None or e.id <= upto]
    recommender.history = fold_events(recommender.history, events)
    recommender.ranker()  # fit the index now, not on the first request
    log.info("loaded %s with %d stored events folded in (after id %d)", bundle, len(events), after)
    return recommender


def warm_states(recommender: Recommender, limit: int) -> StateCache:
    """States of the ``limit`` most recently active users, encoded in batches, in the cache's
    order (most recent last); empty when the scorer has no user states. The Recommender must not
    be serving other threads meanwhile."""
    cache: StateCache = OrderedDict()
    if limit < 1 or not hasattr(recommender.scorer, "encode_users"):
        return cache
    history = recommender.history
    offsets = history.user_offsets()
    active = np.flatnonzero(np.diff(offsets) > 0)
    latest = history.timestamp[offsets[active + 1] - 1]
    chosen = active[np.argsort(latest, kind="stable")][-limit:]  # oldest first: the LRU end
    for start in range(0, len(chosen), WARM_BATCH):
        batch = chosen[start : start + WARM_BATCH]
        for u, state in zip(batch, recommender.scorer.encode_users(history, batch), strict=True):
            seen = np.unique(history.item_idx[offsets[u] : offsets[u + 1]])
            cache[str(history.users.id_of(int(u)))] = (state, seen)
    return cache
