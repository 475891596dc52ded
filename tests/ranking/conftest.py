"""Planted clusters for ranking tests: items around orthogonal centres, each with a category."""

from __future__ import annotations

import numpy as np
import pytest

from facetrec.ids import Vocabulary
from facetrec.types import ItemCatalog, UserState, object_array

N_CLUSTERS = 4
PER_CLUSTER = 25
DIM = 8
NAMES = ("Sci-Fi", "Horror", "Comedy", "Jazz")
DAY = 86_400


class Planted:
    """``vectors`` [100, 8]: cluster c's items are e_c + noise; ``cluster`` of each item; a catalogue
    with one category per cluster, a price and a creation time; ``state(...)`` builds UserStates."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        n = N_CLUSTERS * PER_CLUSTER
        self.cluster = np.repeat(np.arange(N_CLUSTERS), PER_CLUSTER)
        centres = np.eye(DIM)[:N_CLUSTERS]
        self.centres = centres
        # within a cluster, item 0 is the most central (highest dot with the centre)
        spread = np.tile(np.linspace(1.0, 0.5, PER_CLUSTER), N_CLUSTERS)
        noise = 0.05 * rng.normal(size=(n, DIM))
        noise[:, :N_CLUSTERS] = 0.0
        self.vectors = (centres[self.cluster] * spread[:, None] + noise).astype(np.float32)
        self.items = Vocabulary([f"i{i}" for i in range(n)], "item")
        titles = np.array([f"{NAMES[c]} title {i}" for i, c in enumerate(self.cluster)], dtype=object)
        self.catalog = ItemCatalog(
            items=self.items,
            text={"title": titles},
            categories=object_array([(NAMES[c],) for c in self.cluster]),
            numeric={"price": np.arange(n, dtype=np.float64)},
            created_at=np.full(n, 1000.0 * DAY),
        )

    def state(self, clusters, weights, history=None) -> UserState:
        """Interests at the given cluster centres; history items split evenly across interests."""
        clusters = list(clusters)
        interests = self.centres[clusters]
        history = np.asarray(history if history is not None else [], dtype=np.int64)
        attention = np.zeros((len(clusters), len(history)), np.float32)
        for j, c in enumerate(clusters):
            mine = self.cluster[history] == c
            attention[j, mine] = 1.0 / max(mine.sum(), 1)
            if not mine.any() and len(history):
                attention[j] = 1.0 / len(history)
        return UserState(interests, np.asarray(weights, np.float32), history, attention)


@pytest.fixture(scope="session")
def planted() -> Planted:
    return Planted()
