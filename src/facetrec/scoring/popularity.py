"""Most-popular baseline: every user gets the items with the most (recent) interactions.

Weak but honest: a model that cannot beat it has learned nothing personal. The optional
window counts only the last ``window_days`` before the end of training, which tracks trends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np

from facetrec.errors import ConfigError
from facetrec.evaluation.evalset import EvalSet
from facetrec.scoring.base import Capabilities, Scorer
from facetrec.types import Interactions, ItemCatalog

_DAY = 86_400


@dataclass(frozen=True)
class PopularityConfig:
    window_days: float | None = None
    """Count only events in this many days before the last training event (None: all time)."""
    distinct_users: bool = True
    """Count users who interacted with an item rather than events, so one fan cannot inflate it."""

    def __post_init__(self) -> None:
        if self.window_days is not None and not self.window_days > 0:
            raise ConfigError(f"window_days must be > 0 or None, got {self.window_days}")


class PopularityScorer(Scorer[PopularityConfig]):
    config_class = PopularityConfig
    capabilities = Capabilities(needs=frozenset({"ids", "time"}))

    popularity_: np.ndarray

    def fit(self, train: Interactions, catalog: ItemCatalog | None = None, valid: EvalSet | None = None) -> Self:
        keep = np.ones(len(train), dtype=bool)
        if self.config.window_days is not None and len(train):
            keep = train.timestamp >= train.timestamp.max() - self.config.window_days * _DAY
        users, items = train.user_idx[keep], train.item_idx[keep]
        if self.config.distinct_users:
            pairs = np.unique(users.astype(np.int64) * train.n_items + items)
            items = (pairs % train.n_items).astype(np.int64)
        counts = np.bincount(items, minlength=train.n_items).astype(np.float32)
        self.popularity_ = counts / max(1.0, float(counts.max()))
        self.n_items_ = train.n_items
        return self

    def _score(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(users), self.n_items_)).copy()
