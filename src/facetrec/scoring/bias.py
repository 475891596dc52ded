"""Baseline rating predictor: global mean + user bias + item bias (Koren, KDD 2008).

Predicts ratings on the data's own scale, so it anchors the rating-prediction protocol
(RMSE/MAE) the way popularity anchors ranking. Biases are fitted by a few rounds of
regularised alternating means, in closed form, vectorised with bincount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np

from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.evalset import EvalSet
from facetrec.scoring.base import Capabilities, Scorer
from facetrec.types import Interactions, ItemCatalog


@dataclass(frozen=True)
class BiasConfig:
    user_l2: float = 10.0
    """Shrinks user biases of users with few ratings towards 0."""
    item_l2: float = 25.0
    """Shrinks item biases of items with few ratings towards 0."""
    rounds: int = 10
    """Alternating updates of item then user biases."""

    def __post_init__(self) -> None:
        if self.user_l2 < 0 or self.item_l2 < 0 or self.rounds < 1:
            raise ConfigError("BiasConfig: user_l2 and item_l2 must be >= 0 and rounds >= 1")


class BiasScorer(Scorer[BiasConfig]):
    """Scores are predicted ratings; a user's bias is re-estimated from the history given."""

    config_class = BiasConfig
    capabilities = Capabilities(
        needs=frozenset({"ids", "ratings"}), can=frozenset({"known_users", "raw_history", "ratings"})
    )

    mean_: float
    item_bias_: np.ndarray

    def fit(self, train: Interactions, catalog: ItemCatalog | None = None, valid: EvalSet | None = None) -> Self:
        rated = ~np.isnan(train.rating)
        if not rated.any():
            raise DataError("BiasScorer: the training data has no ratings")
        users, items, ratings = train.user_idx[rated], train.item_idx[rated], train.rating[rated].astype(np.float64)
        self.mean_ = float(ratings.mean())
        item_bias = np.zeros(train.n_items)
        user_bias = np.zeros(train.n_users)
        for _ in range(self.config.rounds):
            item_bias = self._shrunk_mean(
                items, ratings - self.mean_ - user_bias[users], train.n_items, self.config.item_l2
            )
            user_bias = self._shrunk_mean(
                users, ratings - self.mean_ - item_bias[items], train.n_users, self.config.user_l2
            )
        self.item_bias_ = item_bias.astype(np.float32)
        self.n_items_ = train.n_items
        return self

    @staticmethod
    @staticmethod
    def _shrunk_mean(index: np.ndarray, residual: np.ndarray, size: int, l2: float) -> np.ndarray:
        """Sum of residuals / (count + l2) per index; 0 where nothing was rated."""
        total = np.bincount(index, residual, minlength=size)
        denominator = np.bincount(index, minlength=size) + l2
        return np.divide(total, denominator, out=np.zeros(size), where=denominator > 0)

    def _user_bias(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        rated = ~np.isnan(history.rating)
        u, i, r = history.user_idx[rated], history.item_idx[rated], history.rating[rated]
        residual = r - self.mean_ - self.item_bias_[i]
        bias = self._shrunk_mean(u, residual, history.n_users, self.config.user_l2)
        return bias[users]

    def _score(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        return self.mean_ + self._user_bias(history, users)[:, None] + self.item_bias_[None, :]
