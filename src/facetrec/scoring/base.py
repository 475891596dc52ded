"""The scorer contract: a batch of users in, a users x items score matrix out.

Scores depend on what a user did (``history``), never on a user being known at training time,
so new users and anonymous sessions are served the same way as known users. Item indices are
those of the training item vocabulary; rows are users, always.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self, TypeVar

import numpy as np
import scipy.sparse as sp

from facetrec.component import Component
from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.evalset import EvalSet
from facetrec.types import Interactions, ItemCatalog

C = TypeVar("C")
FEEDBACK = ("binary", "weight")
"""How a history becomes a user row: 1 per item seen, or the summed event weights."""

NEEDS = ("ids", "text", "reviews", "image", "audio", "time", "events", "ratings")
"""What a model can read from the data: item ids, item text, review text, images, audio,
timestamps, event types, rating values."""
CAN = ("known_users", "raw_history", "cold_items", "interest_vectors", "item_vectors", "explain", "ratings")
"""What a model can do: score known users; score a raw history (a new user or a session); score
items without training events; give per-user interest vectors for ANN retrieval; give item
vectors (similar items, diversity); explain an item by the history behind it; predict ratings."""


@dataclass(frozen=True)
class Capabilities:
    """A model's declared inputs and abilities; the pipeline reads these, never ``hasattr``."""

    needs: frozenset[str] = frozenset({"ids"})
    can: frozenset[str] = frozenset({"known_users", "raw_history"})

    def __post_init__(self) -> None:
        for name, values, valid in (("needs", self.needs, NEEDS), ("can", self.can, CAN)):
            unknown = sorted(set(values) - set(valid))
            if unknown:
                raise ConfigError(f"Capabilities.{name}: unknown {unknown}; choose from {', '.join(valid)}")
        object.__setattr__(self, "needs", frozenset(self.needs))
        object.__setattr__(self, "can", frozenset(self.can))


class Scorer(Component[C]):
    """Base class of every scorer (baselines and the facet model).

    A scorer with ``item_vectors`` in ``capabilities.can`` implements ``item_vectors()``; one
    with ``interest_vectors`` implements ``encode_users(history, users) -> list[UserState]``.
    """

    n_items_: int
    capabilities: ClassVar[Capabilities] = Capabilities()

    def item_vectors(self) -> np.ndarray:
        """[n_items, d] vectors in which the model ranks items (models that declare ``item_vectors``)."""
        raise ConfigError(f"{type(self).__name__} has no item vectors (capabilities: {sorted(self.capabilities.can)})")

    @property
    def modalities(self) -> list[str]:
        """The modalities fused into this model's item vectors, in order (empty: it fuses none)."""
        return []

    def modality_contributions(self, vectors: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """[m, len(modalities)]: each modality's part of the dot product of ``vectors[r]`` with item
        ``idx[r]`` (models whose ``modalities`` are not empty)."""
        raise ConfigError(f"{type(self).__name__} fuses no modalities")

    def add_items(self, text_vectors: np.ndarray) -> None:
        """Append items after fitting, described by their raw text embeddings [m, d] (models that
        declare ``cold_items``); they are scored from then on without retraining."""
        raise ConfigError(f"{type(self).__name__} cannot score items it was not trained on")

    @property
    def state_events(self) -> int | None:
        """How many of a user's newest events their UserState depends on (None: all of them), so
        a Recommender re-encodes a user whose events arrived from that tail alone."""
        return None

    def encode_users(self, history: Interactions, users: np.ndarray) -> list:
        """One UserState per user (models that declare ``interest_vectors``)."""
        raise ConfigError(f"{type(self).__name__} gives no interest vectors; rank its scores instead")

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
