"""Content-based scorer: a user is the (weighted, recency-decayed) mean of what they consumed,
read through a text encoder; items are scored by cosine similarity to that profile.

Because items are represented by their text, an item nobody has interacted with yet scores
like any other: this is the cold-start baseline ID-only models cannot be (they score it 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import numpy as np

from facetrec.data.split import EvalSet
from facetrec.errors import ConfigError, DataError
from facetrec.scoring.base import Scorer, history_matrix
from facetrec.types import Interactions, ItemCatalog, ItemEmbeddings

if TYPE_CHECKING:
    from facetrec.content.encoders import TextEncoder

_DAY = 86_400.0
ENCODERS = ("minilm", "minilm-onnx-int8", "lexical")


@dataclass(frozen=True)
class ContentKNNConfig:
    encoder: str = "minilm"
    """"minilm" (bundled all-MiniLM-L6-v2), "minilm-onnx-int8" (its fast CPU path), "lexical"
    (TF-IDF + LSA, no model needed), or a local path to a sentence-transformers model."""
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
    """Share of review text in each item vector, 0 to 1: an item is ``(1 - w) * text + w * reviews``,
    renormalised, where ``reviews`` pools the item's training reviews (content/reviews.py). Items
    without reviews (all cold items) keep their text vector. 0: reviews are not read."""

    def __post_init__(self) -> None:
        if self.max_tokens < 8 or self.history_length < 1 or self.batch_size < 1:
            raise ConfigError("ContentKNNConfig: max_tokens >= 8, history_length >= 1 and batch_size >= 1 required")
        if not 0.0 <= self.reviews_weight <= 1.0:
            raise ConfigError(f"ContentKNNConfig.reviews_weight: must be in [0, 1], got {self.reviews_weight!r}")
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise ConfigError(f"half_life_days must be > 0 or None, got {self.half_life_days}")


class ContentKNNScorer(Scorer[ContentKNNConfig]):
    config_class = ContentKNNConfig

    item_vectors_: np.ndarray

    def fit(self, train: Interactions, catalog: ItemCatalog | None = None, valid: EvalSet | None = None) -> Self:
        if catalog is None:
            raise DataError("ContentKNNScorer needs the item catalogue: call .fit(train, catalog)")
        if self.config.reviews_weight > 0 and train.review is None:
            raise DataError(
                "ContentKNNScorer: reviews_weight > 0 but the training interactions carry no review text; "
                "set reviews_weight=0 or load a dataset with reviews"
            )
        vectors = encode_catalog(catalog, self.config, train if self.config.reviews_weight > 0 else None)
        self.item_vectors_ = vectors.normalize().vectors
        self.n_items_ = train.n_items
        return self

    def _score(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        recent = recent_events(history, users, self.config.history_length, self.config.half_life_days)
        profiles = history_matrix(recent, users, "weight") @ self.item_vectors_
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        profiles = np.divide(profiles, norms, out=np.zeros_like(profiles), where=norms > 0)
        return profiles @ self.item_vectors_.T


def encode_catalog(
    catalog: ItemCatalog, config: ContentKNNConfig, reviews: Interactions | None = None
) -> ItemEmbeddings:
    """Item texts from the catalogue, encoded with the configured encoder (cached when asked).

    With ``reviews`` (the training interactions) and ``config.reviews_weight`` > 0, each item's
    vector blends in its review embedding (:func:`blend`); only those reviews are read. The
    lexical encoder is then fitted on item texts and review texts together, so both share one space.
    """
    from facetrec.content.text import item_texts

    reviews = reviews if config.reviews_weight > 0 else None
    store = None
    if config.encoder == "lexical":
        from facetrec.content.lexical import LexicalEncoder, LexicalTextEncoder
        from facetrec.content.reviews import review_texts

        texts = item_texts(catalog)
        corpus = texts + ([t for t in review_texts(reviews) if t] if reviews is not None else [])
        lexical = LexicalEncoder(svd_dim=max(1, min(128, len(corpus) - 1))).fit(corpus)  # LSA cannot exceed the corpus
        text = lexical.item_embeddings(texts, catalog.items)
        encoder: TextEncoder = LexicalTextEncoder(lexical)
    else:
        from facetrec.content.encoders import SentenceTransformerEncoder
        from facetrec.content.store import EmbeddingStore, embed_items

        onnx = config.encoder == "minilm-onnx-int8"
        model = None if config.encoder in ("minilm", "minilm-onnx-int8") else config.encoder
        encoder = SentenceTransformerEncoder(
            model, backend="onnx" if onnx else "torch", quantize=onnx, max_length=config.max_tokens
        )
        texts = item_texts(catalog, tokenizer=encoder.model_path, max_tokens=config.max_tokens)
        store = EmbeddingStore(config.store_dir) if config.store_dir else None
        text = embed_items(encoder, texts, catalog.items, store, batch_size=config.batch_size)
    if reviews is None:
        return text
    from facetrec.content.reviews import review_embeddings

    pooled = review_embeddings(reviews, encoder, store=store, batch_size=config.batch_size)
    return blend(text, pooled, config.reviews_weight)


def blend(text: ItemEmbeddings, reviews: ItemEmbeddings, weight: float) -> ItemEmbeddings:
    """Unit ``(1 - weight) * text + weight * reviews`` per item; an item with a zero review row keeps its text."""
    if text.items is not reviews.items and not np.array_equal(text.items.ids, reviews.items.ids):
        raise DataError("blend: the text and review embeddings cover different items; build both from one dataset")
    if text.dim != reviews.dim:
        raise DataError(f"blend: text vectors have {text.dim} dimensions but review vectors {reviews.dim}")
    unit_text, unit_reviews = text.normalize().vectors, reviews.normalize().vectors
    has_reviews = np.abs(unit_reviews).sum(axis=1, keepdims=True) > 0
    mixed = np.where(has_reviews, (1.0 - weight) * unit_text + weight * unit_reviews, unit_text)
    encoder_id = f"{text.encoder_id}+{weight:g}*{reviews.encoder_id}"
    return ItemEmbeddings(mixed, text.items, encoder_id, modality="text+reviews").normalize()


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
