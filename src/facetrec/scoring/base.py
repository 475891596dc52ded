"""The scorer contract: a batch of users in, a users x items score matrix out.

Scores depend on what a user did (``history``), never on a user being known at training time,
so new users and anonymous sessions are served the same way as known users. Item indices are
those of the training item vocabulary; rows are users, always.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Self, TypeVar

import numpy as np
import scipy.sparse as sp

from facetrec.component import Component
from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.evalset import EvalSet
from facetrec.types import Interactions, ItemCatalog

C = TypeVar("C")
FEEDBACK = ("binary", "weight")
"""How a history becomes a user row: 1 per item seen, or the summed event weights."""


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


def check_feedback(value: str) -> None:
    if value not in FEEDBACK:
        raise ConfigError(f"feedback must be one of {', '.join(map(repr, FEEDBACK))}, got {value!r}")


def history_matrix(history: Interactions, users: np.ndarray, feedback: str = "binary") -> sp.csr_matrix:
    """Row ``r`` holds user ``users[r]``'s events in ``history`` (float32 CSR [len(users), n_items]).

    ``feedback="binary"`` puts 1 where the user's events with the item have a positive total
    weight, ``"weight"`` the sum of the event weights. Only the requested users' events are read,
    so scoring in batches stays linear in the history size; repeated users get repeated rows.
    """
    users = np.asarray(users, dtype=np.int64)
    unique, inverse = np.unique(users, return_inverse=True)
    row_of = np.full(history.n_users, -1, dtype=np.int64)
    row_of[unique] = np.arange(len(unique))
    rows = row_of[history.user_idx]
    keep = rows >= 0
    matrix = sp.csr_matrix(
        (history.weight[keep], (rows[keep], history.item_idx[keep])),
        shape=(len(unique), history.n_items),
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    matrix.eliminate_zeros()  # an event weighted 0 (e.g. a one-star "never again" review) is no interest
    if feedback == "binary":
        matrix.data[:] = 1.0
    in_order = len(unique) == len(users) and np.array_equal(unique, users)
    return matrix if in_order else matrix[inverse]
