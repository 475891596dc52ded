"""What an evaluation (or early stopping) reads: held-out targets and the history before them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facetrec.types import Interactions


@dataclass(frozen=True, eq=False)
class EvalSet:
    """Held-out ``targets`` and the ``history`` (strictly not later in time) that predicts them."""

    history: Interactions
    targets: Interactions

    @property
    def n_users(self) -> int:
        return len(np.unique(self.targets.user_idx))
