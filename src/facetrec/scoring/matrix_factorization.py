"""Matrix-factorisation baselines through the ``implicit`` library: ALS (Hu et al., ICDM 2008) and
BPR (Rendle et al., UAI 2009).

Only item factors are kept. A user's factors are computed from the history passed to ``score``
(folded in), so a user unseen at training time is served exactly like a known one, and the saved
model holds nothing about the training users. The CPU classes are used explicitly so that a
CUDA build of ``implicit`` never changes results or device behind the caller's back.

Determinism (checked on ML-100K with implicit 0.7.3): ALS solves each user and each item
independently, so its factors are bit-identical for any ``num_threads``; BPR runs lock-free
(Hogwild) SGD whose threads race, so with more than one thread two runs differ (by up to 0.04 in
a factor on ML-100K). BPR therefore defaults to one thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from threadpoolctl import threadpool_limits

from facetrec.errors import ConfigError
from facetrec.evaluation.evalset import EvalSet
from facetrec.scoring.base import Capabilities, Scorer, check_feedback, history_matrix
from facetrec.scoring.propensity import check_power, ipw_weights
from facetrec.types import Interactions, ItemCatalog


def _implicit() -> Any:
    """implicit's CPU package, imported before any ``threadpool_limits`` block: the limit only
    reaches BLAS libraries already loaded when the block starts."""
    import implicit.cpu.als
    import implicit.cpu.bpr

    return implicit.cpu


def _check(config: Any, positive: tuple[str, ...], non_negative: tuple[str, ...]) -> None:
    for name in positive:
        value = getattr(config, name)
        if isinstance(value, bool) or not value > 0:
            raise ConfigError(f"{name} must be > 0, got {value!r}")
    for name in non_negative:
        value = getattr(config, name)
        if isinstance(value, bool) or not value >= 0:
            raise ConfigError(f"{name} must be >= 0, got {value!r}")


@dataclass(frozen=True)
class ALSConfig:
    factors: int = 256
    """Latent dimensions. Defaults here come from ML-100K leave-one-out validation, where 256 and
    512 factors tied (NDCG@10 0.0861 vs 0.0863) and 256 costs half."""
    regularization: float = 10.0
    """L2 penalty on user and item factors (not scaled by counts: larger data may want less)."""
    alpha: float = 2.0
    """Confidence scaling: implicit weighs an observed entry by alpha x its value (unobserved: 1)."""
    iterations: int = 15
    """Alternating sweeps (users, then items)."""
    seed: int = 0
    """Seeds the random initial factors; results are identical for any num_threads."""
    num_threads: int = 0
    """Threads for fitting and folding in (0: all cores)."""
    feedback: str = "binary"
    """"binary" (any event counts once) or "weight" (summed event weights, e.g. repeat plays)."""
    show_progress: bool = False
    """Show implicit's progress bar while fitting."""
    ipw_power: float = 0.0
    """Popularity debiasing (:mod:`facetrec.scoring.propensity`): each entry's confidence is scaled
    by its item's inverse-propensity weight, users per item ** -ipw_power (0: off)."""

    def __post_init__(self) -> None:
        _check(self, ("factors", "iterations", "alpha"), ("regularization", "seed", "num_threads"))
        check_feedback(self.feedback)
        check_power("ALSConfig", self.ipw_power)


class ALSScorer(Scorer[ALSConfig]):
    """Implicit-feedback ALS; ``item_factors_`` is float32 [n_items, factors].

    A user's factors are the exact ALS least-squares solution for their history rows given the
    item factors (implicit's ``recalculate_user``, batched in C). For training users this is the
    step ALS itself would take next; on ML-100K it validates as well as the stored training
    factors (NDCG@10 0.0861 folded in vs 0.0860 stored, at the defaults), and it works for anyone.
    """

    config_class = ALSConfig
    capabilities = Capabilities(can=frozenset({"known_users", "raw_history", "item_vectors"}))

    item_factors_: np.ndarray
    item_weights_: np.ndarray
    """Inverse-propensity weight of each item's entries, set only with ``ipw_power`` > 0; users
    are folded in with the same confidences as training used."""

    def _model(self, cpu: Any) -> Any:
        c = self.config
        return cpu.als.AlternatingLeastSquares(
            factors=c.factors,
            regularization=c.regularization,
            alpha=c.alpha,
            iterations=c.iterations,
            num_threads=c.num_threads,
            random_state=c.seed,
        )

    def fit(self, train: Interactions, catalog: ItemCatalog | None = None, valid: EvalSet | None = None) -> Self:
        self.__dict__.pop("item_weights_", None)
        if self.config.ipw_power > 0:
            self.item_weights_ = ipw_weights(train.users_per_item(), self.config.ipw_power)
        matrix = self._confidences(train, np.arange(train.n_users))
        cpu = _implicit()
        with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS threads on top thrash
            model = self._model(cpu)
            model.fit(matrix, show_progress=self.config.show_progress)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.n_items_ = train.n_items
        return self

    def _confidences(self, history: Interactions, users: np.ndarray) -> Any:
        """The users' history rows, each entry scaled by its item's weight when debiasing."""
        rows = history_matrix(history, users, self.config.feedback)
        weights = self.__dict__.get("item_weights_")
        if weights is not None:
            rows.data *= weights[rows.indices]
        return rows

    def user_factors(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        """Folded-in factors [len(users), factors] of ``users`` from their events in ``history``."""
        self._require_fitted("user_factors")
        rows = self._confidences(history, users)
        cpu = _implicit()
        with threadpool_limits(1, "blas"):
            model = self._model(cpu)
            model.item_factors = self._writable_factors()
            return model.recalculate_user(np.arange(rows.shape[0]), rows)

    def _writable_factors(self) -> np.ndarray:
        """``item_factors_`` as implicit's Cython takes them: a writable buffer (it only reads it).
        Factors mapped read-only from a bundle are copied once per process."""
        if self.item_factors_.flags.writeable:
            return self.item_factors_
        copy = getattr(self, "_factors_copy", None)
        if copy is None or copy[0] is not self.item_factors_:
            self._factors_copy = (self.item_factors_, np.array(self.item_factors_))
        return self._factors_copy[1]

    def _score(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        return self.user_factors(history, users) @ self.item_factors_.T

    def item_vectors(self) -> np.ndarray:
        self._require_fitted("item_vectors")
        return self.item_factors_


@dataclass(frozen=True)
class BPRConfig:
    factors: int = 64
    """Latent dimensions (implicit adds one more column for an item bias)."""
    learning_rate: float = 0.05
    """SGD step size."""
    regularization: float = 0.001
    """L2 penalty on factors."""
    iterations: int = 300
    """Epochs of SGD over the positive events."""
    seed: int = 0
    """Seeds initial factors and negative sampling."""
    num_threads: int = 1
    """SGD threads (0: all cores); more than one is faster but not reproducible (threads race)."""
    show_progress: bool = False
    """Show implicit's progress bar while fitting."""

    def __post_init__(self) -> None:
        _check(self, ("factors", "iterations", "learning_rate"), ("regularization", "seed", "num_threads"))


class BPRScorer(Scorer[BPRConfig]):
    """Pairwise-ranking MF; ``item_factors_`` float32 [n_items, factors], ``item_bias_`` [n_items].

    BPR has no closed-form user step, so a user is folded in as the mean of their history items'
    factors (the asymmetric item-based user model of FISM/NAIS); the score adds the item bias, so
    an empty history falls back to the bias, a popularity-like order. On ML-100K validation
    (NDCG@10, defaults) it beats the stored training user factors (0.076 vs 0.035; 0.069 vs 0.059
    at implicit's defaults) and a ridge fit of the 0/1 history row on the item factors (0.036,
    0.050 without the bias): BPR's factors live on a ranking scale, not the scale a regression
    assumes, while averaging needs no scale at all.
    """

    config_class = BPRConfig
    capabilities = Capabilities(can=frozenset({"known_users", "raw_history", "item_vectors"}))

    item_factors_: np.ndarray
    item_bias_: np.ndarray

    def fit(self, train: Interactions, catalog: ItemCatalog | None = None, valid: EvalSet | None = None) -> Self:
        c = self.config
        matrix = history_matrix(train, np.arange(train.n_users), "binary")  # BPR reads only which entries exist
        cpu = _implicit()
        with threadpool_limits(1, "blas"):
            model = cpu.bpr.BayesianPersonalizedRanking(
                factors=c.factors,
                learning_rate=c.learning_rate,
                regularization=c.regularization,
                iterations=c.iterations,
                num_threads=c.num_threads,
                random_state=c.seed,
            )
            model.fit(matrix, show_progress=c.show_progress)
        factors = np.asarray(model.item_factors, dtype=np.float32)
        # implicit >= 0.5 appends an item-bias column (and a constant 1 to every user); older ones do not
        has_bias = factors.shape[1] == c.factors + 1
        self.item_factors_ = np.ascontiguousarray(factors[:, : c.factors])
        self.item_bias_ = factors[:, c.factors].copy() if has_bias else np.zeros(len(factors), np.float32)
        self.n_items_ = train.n_items
        return self

    def item_vectors(self) -> np.ndarray:
        self._require_fitted("item_vectors")
        return self.item_factors_

    def user_factors(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        """Folded-in factors [len(users), factors]: the mean factors of each user's history items."""
        self._require_fitted("user_factors")
        rows = history_matrix(history, users, "binary")
        counts = np.maximum(np.asarray(rows.sum(axis=1)).ravel(), 1.0)
        return np.asarray(rows @ self.item_factors_) / counts[:, None].astype(np.float32)

    def _score(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        return self.user_factors(history, users) @ self.item_factors_.T + self.item_bias_
