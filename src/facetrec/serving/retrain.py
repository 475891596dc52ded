"""Offline retraining: a bundle's data plus the stored events -> a new bundle.

The new bundle records (``serving.json``) the store and the last event id it holds, so a
service started from it, or reloaded onto it, folds in only the events that came later.
"""

from __future__ import annotations

from pathlib import Path

from facetrec.config import to_dict
from facetrec.data.dataset import Dataset
from facetrec.errors import ConfigError
from facetrec.recommender import Recommender, fit_recommender
from facetrec.scoring.registry import SCORERS
from facetrec.serving.history import fold_events, read_watermark, write_watermark
from facetrec.serving.store import EventStore


def scorer_kind(scorer: object) -> str:
    """The registry name of ``scorer``'s class (e.g. "facet")."""
    target = f"{type(scorer).__module__}:{type(scorer).__name__}"
    for kind, path in SCORERS.items():
        if path == target:
            return kind
    raise ConfigError(f"retrain: {type(scorer).__name__} is not in the scorer registry; train it with its own script")


def retrain(bundle: str | Path, store: EventStore, out: str | Path, epochs: int | None = None) -> tuple[Path, int]:
    """Fit the bundle's model kind and settings on its histories plus the newer stored events;
    write the bundle to ``out``. Returns (its manifest, the number of events folded in)."""
    old = Recommender.load(bundle)
    after = read_watermark(bundle, store)
    events = store.since(after)
    history = fold_events(old.history, events)
    params = to_dict(old.scorer.config)
    if "checkpoint_dir" in params:
        params["checkpoint_dir"] = None  # never resume from the old model's checkpoints
    if epochs is not None:
        params["epochs"] = epochs
    data = Dataset(f"retrain-{Path(out).name}", history, old.catalog)
    new = fit_recommender(data, scorer_kind(old.scorer), params, old.ranking)
    manifest = new.save(out)
    write_watermark(out, store, events[-1].id if events else after)
    return manifest, len(events)
