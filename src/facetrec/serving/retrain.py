"""Offline retraining: a bundle's histories plus the events stored since -> a new bundle.

The stored events after the bundle's watermark are read from the store in arrival order and
appended to the bundle's in-memory histories (no re-sort per event); the model is fitted on the
result. The new bundle records (``serving.json``) the store and the last event it holds, so a
service started from it, or reloaded onto it, replays only the events that came later.
"""

from __future__ import annotations

from pathlib import Path

from facetrec.config import to_dict
from facetrec.data.dataset import Dataset
from facetrec.recommender import Recommender, fit_recommender
from facetrec.scoring.registry import kind_of
from facetrec.serving.bundle import item_catalog, read_watermark, write_watermark
from facetrec.serving.store import CHUNK, ServiceStore


def retrain(bundle: str | Path, store: ServiceStore, out: str | Path, epochs: int | None = None) -> tuple[Path, int]:
    """Fit the bundle's model kind and settings on its histories plus the newer stored events;
    write the bundle to ``out``. Returns (its manifest, the number of events folded in)."""
    old = Recommender.load(bundle)
    added = [(item_id, fields) for _, item_id, fields in store.items_since(0) if item_id not in old.items]
    catalog = old.catalog.concat(item_catalog(added)) if added else old.catalog
    old.histories.extend_items(catalog.items)  # items added while serving join the catalogue
    last = read_watermark(bundle, store)
    folded = 0
    while batch := store.since(last, CHUNK):
        folded += old.histories.append([e for e in batch if e.item_id in catalog.items])
        last = batch[-1].seq
    params = to_dict(old.scorer.config)
    if "checkpoint_dir" in params:
        params["checkpoint_dir"] = None  # never resume from the old model's checkpoints
    if epochs is not None:
        params["epochs"] = epochs
    data = Dataset(f"retrain-{Path(out).name}", old.histories.interactions(), catalog)
    fit = old.fit_settings  # the same seed, event filter and item encoder as the bundle was built with
    encoder = old.encoder.config.encoder if old.encoder is not None else "none"
    seed, first_only = fit.get("seed", 0), fit.get("first_only", False)
    new = fit_recommender(
        data, kind_of(old.scorer), params, old.ranking, seed, first_only, encoder, cold_items=old.cold_items
    )
    manifest = new.save(out)
    write_watermark(out, store, last)
    return manifest, folded
