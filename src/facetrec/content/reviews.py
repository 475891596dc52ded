"""Review text embeddings: what users *say* about items, as one vector per item and per user.

Item text says what a seller claims an item is; reviews say what it turned out to be for the
people who used it ("runs small", "great for a toddler", "the strap broke"). Each review is
encoded once (through an :class:`~facetrec.content.store.EmbeddingStore` when given: keyed by
content hash, so a rerun or a second caller encodes nothing), then pooled:

* :func:`review_embeddings`: per item, the weighted mean of its reviews' vectors, L2-normalised
  (modality ``"reviews"``);
* :func:`user_review_profiles`: per user, the same over the reviews they wrote.

**Weighting** (:class:`ReviewWeighting`). Review r gets ``w_r = max(floor, 1 + strength * min(0, s_r))``,
the factor of :func:`~facetrec.content.sentiment.sentiment_weights`: ``s_r`` is the star rating mapped to
[-1, 1] when that is positive, else the more negative of rating and text sentiment (VADER by
default). Praise and neutral reviews weigh 1; a one-star complaint weighs ``floor`` (0.25 by
default): it still says what the item is, but its words ("broke", "refund") describe a failure
more than the item, and one angry review should not outweigh several content ones. The
interaction's own ``weight`` is not used, so weights already lowered by sentiment are not
lowered twice. Each review vector is unit-normalised before pooling, so long reviews do not
count more.

**Missing reviews.** An item (or user) with no review text gets an all-zero row: a zero row
means "this modality is missing", and the fusion stage masks on it. Never fill it with a mean.

**No leakage.** Only the reviews in the ``interactions`` passed in are read. Pass the training
split: reviews written after the split time would otherwise leak the test period into the item
vectors (a review of a test item is the test interaction itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from facetrec.content.base import Progress, TextEncoder, l2_normalize
from facetrec.content.sentiment import SentimentModel, review_sentiment, sentiment_weights
from facetrec.content.store import EmbeddingStore, encode_cached
from facetrec.content.text import clean_text
from facetrec.errors import ConfigError, DataError
from facetrec.types import Interactions, ItemEmbeddings


@dataclass(frozen=True)
class ReviewWeighting:
    """How much each review counts when pooled (formula in the module docstring)."""

    floor: float = 0.25
    """Weight of the most negative review; 1 ignores sentiment (a plain mean)."""
    strength: float = 1.0
    """How fast weight falls with negative evidence; 0 ignores sentiment."""
    rating_scale: tuple[float, float] = (1.0, 5.0)
    """The star scale, mapped onto [-1, 1]."""
    sentiment_model: str | Path | SentimentModel | None = None
    """Scores review text when no ``sentiment`` is passed: None for VADER, a local classifier path, or a model."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= 1.0 or not self.strength >= 0.0:
            raise ConfigError(f"ReviewWeighting: need 0 <= floor <= 1 and strength >= 0, got {self}")

    @property
    def label(self) -> str:
        return f"reviews:floor={self.floor:g},strength={self.strength:g}"


def review_texts(interactions: Interactions) -> np.ndarray:
    """Each interaction's review, cleaned (HTML, control characters, whitespace); "" where none."""
    if interactions.review is None:
        return np.full(len(interactions), "", dtype=object)
    return clean_text(interactions.review)


def review_weights(
    interactions: Interactions, sentiment: np.ndarray | None = None, weighting: ReviewWeighting = ReviewWeighting()
) -> np.ndarray:
    """The pooling weight of each interaction's review (float32, module docstring), 0 where it has no text.

    ``sentiment`` (from :func:`~facetrec.content.sentiment.review_sentiment`) is computed with
    ``weighting.sentiment_model`` when not given.
    """
    has_text = review_texts(interactions) != ""
    if sentiment is None:
        sentiment = np.full(len(interactions), np.nan, np.float32)
        if has_text.any():
            sentiment = review_sentiment(interactions, weighting.sentiment_model)
    unweighted = replace(interactions, weight=np.ones(len(interactions), np.float32))  # the event weight stays out
    factor = sentiment_weights(
        unweighted, sentiment, floor=weighting.floor, strength=weighting.strength, rating_scale=weighting.rating_scale
    )
    return np.where(has_text, factor, 0.0).astype(np.float32)


def review_embeddings(
    interactions: Interactions,
    encoder: TextEncoder,
    *,
    store: EmbeddingStore | None = None,
    sentiment: np.ndarray | None = None,
    weighting: ReviewWeighting = ReviewWeighting(),
    batch_size: int = 32,
    progress: Progress = False,
) -> ItemEmbeddings:
    """One unit vector per item of ``interactions.items``: the sentiment-weighted mean of its reviews.

    Items without review text (in ``interactions``) get an all-zero row, meaning "no reviews", not
    "a review pointing nowhere": downstream code masks on it. Only reviews in ``interactions`` are
    used, so pass the training split (see the module docstring). ``store`` caches review vectors
    by content hash; ``progress`` shows a bar with items/s; ``sentiment`` (one score per
    interaction, NaN where none) skips scoring the reviews again.
    """
    weights = review_weights(interactions, sentiment, weighting)
    target = interactions.item_idx
    vectors = _pooled(interactions, target, interactions.n_items, weights, encoder, store, batch_size, progress)
    encoder_id = f"{encoder.encoder_id}|{weighting.label}"
    return ItemEmbeddings(vectors, interactions.items, encoder_id, modality="reviews", normalized=True)


def user_review_profiles(
    interactions: Interactions,
    users: Sequence[int] | np.ndarray,
    encoder: TextEncoder,
    *,
    store: EmbeddingStore | None = None,
    sentiment: np.ndarray | None = None,
    weighting: ReviewWeighting = ReviewWeighting(),
    batch_size: int = 32,
    progress: Progress = False,
) -> np.ndarray:
    """float32 ``[len(users), d]``: row j pools the reviews user ``users[j]`` (an index) wrote.

    Weighted as :func:`review_embeddings` and unit-normalised; all-zero for a user who wrote no
    review text in ``interactions``. Only the reviews of the requested users are encoded.
    """
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    if len(users) and (users.min() < 0 or users.max() >= interactions.n_users):
        bad = users[(users < 0) | (users >= interactions.n_users)][0]
        raise DataError(f"users: index {bad} is outside 0..{interactions.n_users - 1}; pass user indices")
    slot = np.full(interactions.n_users, -1, np.int64)
    slot[users] = np.arange(len(users))  # a user asked for twice fills the last slot; copied below
    row_of = slot[interactions.user_idx]
    weights = np.where(row_of >= 0, review_weights(interactions, sentiment, weighting), 0.0).astype(np.float32)
    pooled = _pooled(interactions, np.maximum(row_of, 0), len(users), weights, encoder, store, batch_size, progress)
    return pooled[slot[users]]


def _pooled(
    interactions: Interactions,
    target: np.ndarray,
    n_targets: int,
    weights: np.ndarray,
    encoder: TextEncoder,
    store: EmbeddingStore | None,
    batch_size: int,
    progress: Progress,
) -> np.ndarray:
    """Unit rows ``[n_targets, d]``: row t = normalised sum of w_r * unit(vector of review r) over target[r] == t."""
    used = np.flatnonzero(weights > 0)
    if not len(used):
        return np.zeros((n_targets, encoder.dim), np.float32)
    texts = review_texts(interactions)[used].tolist()
    if store is not None:
        vectors = encode_cached(encoder, texts, store, batch_size=batch_size, progress=progress)
    else:
        unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)  # each text once
        vectors = encoder.encode(unique.tolist(), batch_size=batch_size, progress=progress)[inverse.reshape(-1)]
    vectors = l2_normalize(np.asarray(vectors, np.float32))
    pool = sp.csr_matrix(
        (weights[used].astype(np.float64), (target[used], np.arange(len(used)))), shape=(n_targets, len(used))
    )
    return l2_normalize(np.asarray(pool @ vectors.astype(np.float64), dtype=np.float32))
