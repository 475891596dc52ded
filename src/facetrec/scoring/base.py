"""The scorer contract: a batch of users in, a users x items score matrix out.

Scores depend on what a user did (``history``), never on a user being known at training time,
so new users and anonymous sessions are served the same way as known users. Item indices are
those of the training item vocabulary; rows are users, always.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Self, TypeVar

import numpy as np

from facetrec.component import Component
from facetrec.data.split import EvalSet
from facetrec.errors import DataError
from facetrec.types import Interactions, ItemCatalog

C = TypeVar("C")


class Scorer(Component[C]):
    """Base class of every scorer (baselines and the facet model)."""

    n_items_: int

    @abstractmethod
    def fit(self, train: Interactions, catalog: ItemCatalog | None = None, valid: EvalSet | None = None) -> Self:
        """Learn from ``train`` (and item content, for content-aware scorers); returns self.

        ``valid`` is for early stopping in trained models; scorers without epochs ignore it.
        """

    @abstractmethod
    def _score(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        """Scores [len(users), n_items] for validated input."""

    def score(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        """Float32 scores [len(users), n_items]: row r scores every item for ``history.users``'s
        user ``users[r]``, from that user's events in ``history`` (higher is better)."""
        self._require_fitted("score")
        users = np.asarray(users)
        if users.ndim != 1 or not np.issubdtype(users.dtype, np.integer):
            raise DataError(
                f"{type(self).__name__}.score: users must be a 1-d integer array, got {users.dtype} "
                f"with shape {users.shape}"
            )
        if users.size and (users.min() < 0 or users.max() >= history.n_users):
            raise DataError(f"{type(self).__name__}.score: user indices must be in 0..{history.n_users - 1}")
        if history.n_items != self.n_items_:
            raise DataError(
                f"{type(self).__name__}.score: history has {history.n_items} items but the scorer was "
                f"fitted on {self.n_items_}; histories must use the training item vocabulary"
            )
        scores = self._score(history, users)
        return np.asarray(scores, dtype=np.float32)
