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

from facetrec import __version__
from facetrec.component import check_saved, read_json
from facetrec.errors import ConfigError, FacetrecError
from facetrec.history import EventRecord
from facetrec.ids import Vocabulary
from facetrec.recommender import BUNDLE_FORMAT, Recommender
from facetrec.scoring.base import Scorer
from facetrec.serving.store import CHUNK, ServiceStore
from facetrec.types import ItemCatalog, object_array

log = logging.getLogger(__name__)

WATERMARK = "serving.json"
"""File in a bundle written by ``facetrec retrain``: the store and the last event (arrival number) it holds."""


def read_watermark(bundle: str | Path, store: ServiceStore) -> int:
    """Arrival number of the last event of ``store`` already inside ``bundle`` (0: none)."""
    path = Path(bundle) / WATERMARK
    if not path.is_file():
        return 0
    mark = read_json(path)
    if mark.get("events") != store.location:
        log.warning(
            "%s was built from %s, not %s: replaying every stored event", path, mark.get("events"), store.location
        )
        return 0
    return int(mark.get("last_event_id", 0))


def write_watermark(bundle: str | Path, store: ServiceStore, last_seq: int) -> Path:
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


def replay_items(recommender: Recommender, store: ServiceStore, after: int) -> int:
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


def replay(recommender: Recommender, store: ServiceStore, after: int) -> int:
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


def check_bundle(bundle: str | Path) -> None:
    """Refuse a bundle that cannot load, with one line naming the file, before anything starts or
    is swapped; cheap (no arrays or tables are read): every manifest parses and matches this
    version, the model's class is a known scorer declaring its saved state, and every
    safetensors and Parquet file is complete (headers and footers match the file sizes)."""
    from facetrec.arrays import map_safetensors
    from facetrec.data.dataset import read_manifest

    root = Path(bundle)
    path = root / "manifest.json"
    try:
        found = path.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        raise ConfigError(f"{root}: not a bundle directory ({exc.strerror})") from None
    if not found:
        raise ConfigError(f"{root}: no manifest.json; is this a bundle written by `facetrec train`?")
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise ConfigError(f"{path}: not a facetrec bundle")
    if manifest.get("facetrec_version") != __version__:
        raise ConfigError(f"{path}: written by facetrec {manifest.get('facetrec_version')}, this is {__version__}")
    scorer, _ = check_saved(root / "scorer")
    if not issubclass(scorer, Scorer):
        raise ConfigError(f"{root / 'scorer'}: holds a {scorer.__name__}, not a scorer")
    read_manifest(root / "data")
    for table in ("interactions", "items", "users"):
        _check_parquet(root / "data" / f"{table}.parquet")
    for name in manifest.get("embeddings", []):
        read_json(root / "embeddings" / f"{name}.json")
        _check_file(root / "embeddings" / f"{name}.safetensors")
        map_safetensors(root / "embeddings" / f"{name}.safetensors")
    if (root / "relations").is_dir():  # the item graph (ranking/relations.py)
        read_json(root / "relations" / "graph.json")
        map_safetensors(root / "relations" / "graph.safetensors")
    if (root / WATERMARK).is_file():
        read_json(root / WATERMARK)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"{path}: missing; the bundle was not written completely")


def _check_parquet(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _check_file(path)
    try:
        pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{path}: not a complete Parquet file ({str(exc).splitlines()[0]})") from None


def load_bundle(bundle: str | Path, store: ServiceStore, warm_users: int = 10_000) -> tuple[Recommender, int]:
    """The bundle's Recommender with the stored events it lacks appended, its ranker fitted and
    the states of its ``warm_users`` most recently active users encoded; returns it and the
    arrival number of the newest event it holds. A damaged bundle is refused by
    :func:`check_bundle` first."""
    check_bundle(bundle)
    recommender = Recommender.load(bundle)
    mark = read_watermark(bundle, store)
    replay_items(recommender, store, 0)  # items first: stored events may name them
    applied = replay(recommender, store, mark)
    recommender.ranker()  # fit the index now, not on the first request
    warmed = recommender.warm(warm_users)
    log.info("loaded %s with stored events %d..%d replayed, %d user states warmed", bundle, mark + 1, applied, warmed)
    return recommender, applied
