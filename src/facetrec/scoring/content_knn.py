"""Content-based scorer: a user is the (weighted, recency-decayed) mean of what they consumed,
read through a text encoder; items are scored by cosine similarity to that profile.

Because items are represented by their text, an item nobody has interacted with yet scores
like any other: this is the cold-start baseline ID-only models cannot be (they score it 0).

With ``reviews_weight`` w > 0, review text joins as a second modality (late fusion) that
re-ranks the items with training reviews among themselves. The review profile is the same
weighted mean over the review vectors of the user's history items. Per user, with ``T`` the
text cosines z-scored over all items and ``R`` the review cosines z-scored over reviewed items,
a reviewed item scores ``mean(T) + std(T) * z((1 - w) T + w R)``, mean, std and z taken over the
reviewed items; every other item (every cold item) keeps ``T``. So reviews reorder the reviewed
items, while where those stand against the unreviewed ones, in mean and spread, stays as their
text puts them. The two simpler mixes fail that (validation numbers in docs/content.md): raw
cosines, because review cosines run higher, lift reviewed items above nearly all cold ones;
z-scores alone, because a mix of two z-scores varies less than one, lift unreviewed items above
reviewed ones whatever their relevance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import scipy.sparse as sp

from facetrec.content.base import l2_normalize
from facetrec.content.item_encoder import encode_items
from facetrec.content.text import TEMPLATES
from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.evalset import EvalSet
from facetrec.scoring.base import Capabilities, Scorer, history_matrix
from facetrec.types import Interactions, ItemCatalog

_DAY = 86_400.0
ENCODERS = ("minilm", "minilm-onnx-int8", "lexical")


@dataclass(frozen=True)
class ContentKNNConfig:
    encoder: str = "minilm"
    """"minilm" (bundled all-MiniLM-L6-v2), "minilm-onnx-int8" (its fast CPU path), "lexical"
    (TF-IDF + LSA, no model needed), or a local path to a sentence-transformers model."""
    template: str = "default"
    """Which item-text template (content/text.py TEMPLATES) builds item texts: "default", "amazon",
    "goodbooks", "ml" or "mind"."""
    max_tokens: int = 128
    """Item texts are truncated to this many tokens before encoding (language models only)."""
    store_dir: str | None = None
    """Embedding cache directory: items already encoded there are not encoded again."""
    history_length: int = 50
    """Only a user's most recent events form the profile."""
    half_life_days: float | None = None
    """Recency decay of history events (None: all recent events count alike)."""
    batch_size: int = 64
    reviews_weight: float = 0.0
    """Share of the review similarity in the score, 0 to 1 (module docstring); items are described
    by the reviews in the training interactions only (content/reviews.py). 0: reviews are not read."""

    def __post_init__(self) -> None:
        if self.max_tokens < 8 or self.history_length < 1 or self.batch_size < 1:
            raise ConfigError("ContentKNNConfig: max_tokens >= 8, history_length >= 1 and batch_size >= 1 required")
        if self.template not in TEMPLATES:
            raise ConfigError(f"ContentKNNConfig.template: must be one of {list(TEMPLATES)}, got {self.template!r}")
        if not 0.0 <= self.reviews_weight <= 1.0:
            raise ConfigError(f"ContentKNNConfig.reviews_weight: must be in [0, 1], got {self.reviews_weight!r}")
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise ConfigError(f"half_life_days must be > 0 or None, got {self.half_life_days}")


class ContentKNNScorer(Scorer[ContentKNNConfig]):
    config_class = ContentKNNConfig
    capabilities = Capabilities(
        needs=frozenset({"text", "reviews", "time"}),
        can=frozenset({"known_users", "raw_history", "cold_items", "item_vectors"}),
    )

    item_vectors_: np.ndarray
    review_vectors_: np.ndarray | None
    """Unit review vector per item, all-zero for items without training reviews (None: not used)."""

    def fit(self, train: Interactions, catalog: ItemCatalog | None = None, valid: EvalSet | None = None) -> Self:
        if catalog is None:
            raise DataError("ContentKNNScorer needs the item catalogue: call .fit(train, catalog)")
        if self.config.reviews_weight > 0 and train.review is None:
            raise DataError(
                "ContentKNNScorer: reviews_weight > 0 but the training interactions carry no review text; "
                "set reviews_weight=0 or load a dataset with reviews"
            )
        text, reviews = encode_items(catalog, self.config, train if self.config.reviews_weight > 0 else None)
        self.item_vectors_ = text.normalize().vectors
        self.review_vectors_ = None if reviews is None else reviews.vectors
        self.n_items_ = train.n_items
        return self

    def item_vectors(self) -> np.ndarray:
        self._require_fitted("item_vectors")
        return self.item_vectors_

    def add_items(self, text_vectors: np.ndarray) -> None:
        self._require_fitted("add_items")
        vectors = np.asarray(text_vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.item_vectors_.shape[1]:
            raise DataError(f"add_items: expected [m, {self.item_vectors_.shape[1]}] text vectors, got {vectors.shape}")
        unit = l2_normalize(vectors)
        self.item_vectors_ = np.vstack([self.item_vectors_, unit])
        if self.review_vectors_ is not None:  # new items have no reviews yet
            self.review_vectors_ = np.vstack(
                [self.review_vectors_, np.zeros((len(unit), self.review_vectors_.shape[1]), np.float32)]
            )
        self.n_items_ += len(unit)

    def _score(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        recent = recent_events(history, users, self.config.history_length, self.config.half_life_days)
        weights = history_matrix(recent, users, "weight")
        scores, _ = cosine_scores(weights, self.item_vectors_)
        if self.review_vectors_ is None:
            return scores
        reviewed = np.abs(self.review_vectors_).sum(axis=1) > 0
        review_scores, has_profile = cosine_scores(weights, self.review_vectors_)
        if not reviewed.any() or not has_profile.any():
            return scores
        w = self.config.reviews_weight
        text = standardize(scores)
        mixed = standardize((1.0 - w) * text + w * standardize(review_scores, reviewed), reviewed)
        within = text[:, reviewed]  # keep the reviewed items where text puts them, in mean and spread
        spread = np.maximum(within.std(axis=1, keepdims=True), 1e-6)  # > 0, so reviews order even equal texts
        mixed = within.mean(axis=1, keepdims=True) + spread * mixed
        return np.where(has_profile[:, None] & reviewed[None, :], mixed, text)


def cosine_scores(weights: sp.csr_matrix, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(profiles @ vectors.T, which profiles are non-zero): profile u is the unit ``weights[u] @ vectors``."""
    profiles = np.asarray(weights @ vectors)
    norms = np.linalg.norm(profiles, axis=1, keepdims=True)
    profiles = np.divide(profiles, norms, out=np.zeros_like(profiles), where=norms > 0)
    return profiles @ vectors.T, norms[:, 0] > 0


def standardize(scores: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
    """Each row's z-scores, with mean and standard deviation taken over ``columns`` (a mask; default all)."""
    part = scores if columns is None else scores[:, columns]
    if part.shape[1] == 0:
        return np.zeros_like(scores)
    mean, std = part.mean(axis=1, keepdims=True), part.std(axis=1, keepdims=True)
    return (scores - mean) / np.maximum(std, 1e-6)


def recent_events(history: Interactions, users: np.ndarray, length: int, half_life_days: float | None) -> Interactions:
    """The last ``length`` events of each requested user, weights decayed by age when asked."""
    wanted = np.zeros(history.n_users, dtype=bool)
    wanted[users] = True
    data = history.take(wanted[history.user_idx]).sorted()
    offsets = data.user_offsets()
    from_end = offsets[data.user_idx + 1] - 1 - np.arange(len(data))
    data = data.take(from_end < length)
    if half_life_days is None or len(data) == 0:
        return data
    last = np.zeros(data.n_users, dtype=np.int64)
    np.maximum.at(last, data.user_idx, data.timestamp)
    age_days = (last[data.user_idx] - data.timestamp) / _DAY
    weight = data.weight * np.power(0.5, age_days / half_life_days).astype(np.float32)
    return Interactions(
        data.user_idx,
        data.item_idx,
        data.timestamp,
        data.users,
        data.items,
        data.event,
        data.rating,
        weight,
        data.review,
    )
