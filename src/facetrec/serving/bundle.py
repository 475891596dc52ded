"""From a bundle and the event store to a live Recommender: replay the stored events the bundle
does not hold (``serving.json`` in a bundle records the last one it does), fit the ranker and
warm the most recently active users' states, so a started or reloaded worker answers them from
its cache.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from facetrec.errors import FacetrecError
from facetrec.history import EventRecord
from facetrec.ids import Vocabulary
from facetrec.recommender import Recommender
from facetrec.serving.store import CHUNK, SQLiteHistoryStore
from facetrec.types import ItemCatalog, object_array

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


ITEM_TEXT = ("title", "description")
"""Text fields an added item may carry (besides categories, tags and created_at)."""


def item_catalog(items: list[tuple[str, dict]]) -> ItemCatalog:
    """New catalogue rows from stored ``(item id, fields)`` (missing text is "")."""
    return ItemCatalog(
        Vocabulary([item_id for item_id, _ in items], "item"),
        {name: np.array([str(f.get(name) or "") for _, f in items], object) for name in ITEM_TEXT},
        object_array([tuple(f.get("categories") or ()) for _, f in items]),
        object_array([tuple(f.get("tags") or ()) for _, f in items]),
        created_at=np.array([np.nan if f.get("created_at") is None else float(f["created_at"]) for _, f in items]),
    )


def replay_items(recommender: Recommender, store: SQLiteHistoryStore, after: int) -> int:
    """Add the items stored after arrival number ``after`` that the recommender's catalogue lacks
    (a retrained bundle already holds them); returns the newest arrival number read."""
    stored = store.items_since(after)
    if not stored:
        return after
    new = [(item_id, fields) for _, item_id, fields in stored if item_id not in recommender.items]
    if new:
        try:
            recommender.add_items(item_catalog(new))
        except FacetrecError as exc:  # never let one stored row stop every worker: say so, move on
            log.error("could not add %d stored items (first %r): %s", len(new), new[0][0], exc)
    return stored[-1][0]


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
    replay_items(recommender, store, 0)  # items first: stored events may name them
    applied = replay(recommender, store, mark)
    recommender.ranker()  # fit the index now, not on the first request
    warmed = recommender.warm(warm_users)
    log.info("loaded %s with stored events %d..%d replayed, %d user states warmed", bundle, mark + 1, applied, warmed)
    return recommender, applied
