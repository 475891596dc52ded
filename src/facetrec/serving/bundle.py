"""From a bundle and the event store to a live Recommender: replay the stored events the bundle
does not hold (``serving.json`` in a bundle records the last one it does), fit the ranker and
warm the most recently active users' states, so a started or reloaded worker answers them from
its cache.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from facetrec.history import EventRecord
from facetrec.recommender import Recommender
from facetrec.serving.store import CHUNK, SQLiteHistoryStore

log = logging.getLogger(__name__)

WATERMARK = "serving.json"
"""File in a bundle written by ``facetrec retrain``: the store and the last event (arrival number) it holds."""


def read_watermark(bundle: str | Path, store: SQLiteHistoryStore) -> int:
    """Arrival number of the last event of ``store`` already inside ``bundle`` (0: none)."""
    path = Path(bundle) / WATERMARK
    if not path.is_file():
        return 0
    mark = json.loads(path.read_text())
    if mark.get("events") != store.location:
        log.warning(
            "%s was built from %s, not %s: replaying every stored event", path, mark.get("events"), store.location
        )
        return 0
    return int(mark.get("last_event_id", 0))


def write_watermark(bundle: str | Path, store: SQLiteHistoryStore, last_seq: int) -> Path:
    path = Path(bundle) / WATERMARK
    path.write_text(json.dumps({"events": store.location, "last_event_id": int(last_seq)}, indent=2) + "\n")
    return path


def replay(recommender: Recommender, store: SQLiteHistoryStore, after: int) -> int:
    """Append the stored events after arrival number ``after`` to ``recommender`` (time
    proportional to them; events on items outside its catalogue, possible after swapping
    bundles, are skipped with a warning). Returns the arrival number of the newest one read."""
    while batch := store.since(after, CHUNK):
        recommender.append(known(recommender, batch))
        after = batch[-1].seq
    return after


def known(recommender: Recommender, events: list[EventRecord]) -> list[EventRecord]:
    """``events`` without those on items the recommender's catalogue lacks (counted in a warning)."""
    found = recommender.items.lookup([e.item_id for e in events]) >= 0
    if found.all():
        return events
    first = events[int((~found).argmax())]
    log.warning(
        "skipped %d stored events on items not in this bundle's catalogue (first: %r, arrival %d)",
        int((~found).sum()), first.item_id, first.seq,
    )  # fmt: skip
    return [e for e, ok in zip(events, found, strict=True) if ok]


def load_bundle(bundle: str | Path, store: SQLiteHistoryStore, warm_users: int = 10_000) -> tuple[Recommender, int]:
    """The bundle's Recommender with the stored events it lacks appended, its ranker fitted and
    the states of its ``warm_users`` most recently active users encoded; returns it and the
    arrival number of the newest event it holds."""
    recommender = Recommender.load(bundle)
    mark = read_watermark(bundle, store)
    applied = replay(recommender, store, mark)
    recommender.ranker()  # fit the index now, not on the first request
    warmed = recommender.warm(warm_users)
    log.info("loaded %s with stored events %d..%d replayed, %d user states warmed", bundle, mark + 1, applied, warmed)
    return recommender, applied
