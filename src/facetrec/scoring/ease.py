"""EASE (Steck, WWW 2019): a shallow linear item-item autoencoder with a closed-form solution.

It learns ``B`` minimising ``|X - XB|² + l2 |B|²`` with ``diag(B) = 0`` (an item may not predict
itself): with ``P = (XᵀX + l2 I)⁻¹``, ``B = -P / diag(P)``. No epochs and no seed, and on
MovieLens-sized catalogues it is one of the strongest baselines there is. The price is a dense
n_items x n_items inverse, so catalogues above ``max_items`` are refused with an explanation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np

from facetrec.errors import ConfigError
from facetrec.evaluation.evalset import EvalSet
from facetrec.scoring.base import Capabilities, Scorer, check_feedback, history_matrix
from facetrec.types import Interactions, ItemCatalog

_BYTES_PER_CELL = 4 + 8 + 8
"""Peak memory per catalogue cell: the float32 Gram matrix, its float64 copy and the float64 inverse."""


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """Closed-form EASE weights from the item Gram matrix ``XᵀX`` (float64 in, float32 out)."""
    g = np.array(gram, dtype=np.float64)
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    del g
    p /= -np.diag(p)  # B_ij = -P_ij / P_jj: column j divided by -P_jj, in place to save memory
    p[np.diag_indices_from(p)] = 0.0
    return p.astype(np.float32)


@dataclass(frozen=True)
class EASEConfig:
    l2: float = 100.0
    """L2 regularisation λ; best on ML-100K (flat from 75 to 150); Steck used 200-1000 on larger data."""
    max_items: int = 25_000
    """Largest catalogue to accept: fitting needs about 20 bytes x n_items² of memory (12.5 GB at 25k)."""
    feedback: str = "binary"
    """"binary" (any event counts once) or "weight" (sum of event weights)."""

    def __post_init__(self) -> None:
        if not self.l2 > 0:
            raise ConfigError(f"l2 must be > 0 (it keeps XᵀX + l2·I invertible), got {self.l2!r}")
        if isinstance(self.max_items, bool) or self.max_items < 1:
            raise ConfigError(f"max_items must be an integer >= 1, got {self.max_items!r}")
        check_feedback(self.feedback)


class EASEScorer(Scorer[EASEConfig]):
    """EASE baseline: scores are ``history rows @ B``; ``B_`` is a dense float32 [n_items, n_items]."""

    config_class = EASEConfig
    capabilities = Capabilities()

    B_: np.ndarray

    def fit(self, train: Interactions, catalog: ItemCatalog | None = None, valid: EvalSet | None = None) -> Self:
        n = train.n_items
        if n > self.config.max_items:
            gib = _BYTES_PER_CELL * n * n / 2**30
            raise ConfigError(
                f"EASEScorer: the catalogue has {n:,} items, above max_items={self.config.max_items:,}; EASE "
                f"inverts a dense {n:,} x {n:,} matrix and would need about {gib:,.1f} GiB of memory. Filter rare "
                "items (k-core), raise max_items if the machine has the memory, or use ItemKNNScorer/ALSScorer."
            )
        x = history_matrix(train, np.arange(train.n_users), self.config.feedback)
        self.B_ = ease_weights((x.T @ x).toarray(), self.config.l2)
        self.n_items_ = n
        return self

    def _score(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        rows = history_matrix(history, users, self.config.feedback)
        return np.asarray(rows @ self.B_)
