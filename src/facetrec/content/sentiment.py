"""Review sentiment, and interaction weights that stop complaints from counting as interest.

An interaction says "this user met this item", not "this user liked it": a one-star "never
again" review is evidence against the item's kind of taste, yet every implicit model counts it
as a positive. :func:`review_sentiment` scores each review in [-1, 1] (VADER offline by default,
or a Hugging Face classifier from a local directory) and :func:`sentiment_weights` turns the
scores, together with the star rating where there is one, into weights (formula there).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from facetrec.content.text import clean_text
from facetrec.errors import ConfigError, DataError
from facetrec.types import Interactions

# Review idioms VADER misreads, rewritten to one token each before scoring. VADER negates a word
# when "never"/"not" stands up to three words before it, regardless of punctuation, so "Never
# again, broke after a day" scores +0.33 ("broke" flipped to positive); other complaints ("fell
# apart", "stopped working") use words VADER's lexicon does not hold. Valences are on VADER's
# -4..4 scale, near its entries for "broke" (-1.8) and "waste" (-1.8). Each row: a keyword that
# must occur (a cheap pre-check), a pattern over the lower-cased text, the token and its valence.
# Patterns begin with a literal so the regex engine can skip ahead (a leading \b is ~15x slower);
# the word boundary is checked after matching instead (see _standalone).
_NEG = r"n(?:ot|['’]?t|ever)\s+"
REVIEW_IDIOMS: tuple[tuple[str, str, str, float], ...] = (
    ("again", _NEG + r"(?:(?:buy|buying|order|ordering)\s+(?:it\s+|this\s+|them\s+)?)?again\b", "xnotagainx", -2.5),
    ("buy", r"do\s*n(?:ot|['’]?t)\s+buy\b", "xdontbuyx", -2.5),
    ("work", _NEG + r"work(?:s|ed|ing)?\b", "xnotworkx", -2.0),
    ("working", r"stopped\s+working\b", "xstoppedworkingx", -2.0),
    ("working", r"quit\s+working\b", "xstoppedworkingx", -2.0),
    ("apart", r"fell\s+apart\b", "xfellapartx", -2.0),
    ("returned", r"returned\s+(?:it|them|this)\b", "xreturnedx", -1.5),
    ("back", r"sent\s+(?:it|them)\s+back\b", "xreturnedx", -1.5),
)
_IDIOMS = [(keyword, re.compile(pattern), token) for keyword, pattern, token, _ in REVIEW_IDIOMS]
# Words that take a negation without a space or apostrophe: "dont", "cannot", "wouldnt".
_AUXILIARIES = frozenset(
    {
        "do",
        "does",
        "did",
        "wo",
        "would",
        "could",
        "should",
        "ca",
        "can",
        "is",
        "was",
        "are",
        "were",
        "has",
        "have",
        "had",
    }
)


class SentimentModel(Protocol):
    """Anything that scores texts in [-1, 1] (negative to positive)."""

    def score(self, texts: Sequence[str]) -> np.ndarray: ...


class VaderSentiment:
    """VADER's compound score (rule-based, no model files), with the review idioms above added.

    VADER is pure Python (~0.5 ms a review); ``n_jobs`` > 1 scores large batches in that many
    worker processes (spawned, so a parent holding torch threads cannot deadlock them).
    """

    def __init__(self, n_jobs: int = 1) -> None:
        if isinstance(n_jobs, bool) or n_jobs < 1:
            raise ConfigError(f"VaderSentiment.n_jobs: must be an integer >= 1, got {n_jobs!r}")
        self.n_jobs = n_jobs

    def score(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if self.n_jobs == 1 or len(texts) < 5_000:  # below that, starting workers costs more than it saves
            return _vader_scores(texts)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        chunks = [texts[i :: 4 * self.n_jobs] for i in range(4 * self.n_jobs)]
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.n_jobs, mp_context=spawn) as pool:
            parts = list(pool.map(_vader_scores, chunks))
        out = np.empty(len(texts), dtype=np.float32)
        for i, part in enumerate(parts):
            out[i :: 4 * self.n_jobs] = part
        return out


def _vader_scores(texts: list[str]) -> np.ndarray:
    polarity = _vader().polarity_scores
    return np.asarray([polarity(_rewrite_idioms(t))["compound"] for t in texts], dtype=np.float32)


@functools.cache
def _vader() -> Any:
    """One analyzer per process: loading VADER's lexicon costs ~50 ms."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    analyzer.lexicon.update({token: valence for _, _, token, valence in REVIEW_IDIOMS})
    return analyzer


def _rewrite_idioms(text: str) -> str:
    """``text`` with each review idiom replaced by its token (case kept elsewhere, for VADER's emphasis)."""
    lower = text.lower()
    if len(lower) != len(text):  # a rare case mapping that changes length: work on the lower-cased text
        text = lower
    spans = [
        (m.start(), m.end(), token)
        for keyword, pattern, token in _IDIOMS
        if keyword in lower
        for m in pattern.finditer(lower)
        if _standalone(lower, m.start())
    ]
    if not spans:
        return text
    parts, position = [], 0
    for start, end, token in sorted(spans):
        if start >= position:  # overlapping idioms: the earlier one wins
            parts += [text[position:start], f" {token} "]
            position = end
    parts.append(text[position:])
    return "".join(parts)


def _standalone(lower: str, start: int) -> bool:
    """Whether a match at ``start`` begins a word, or is a negation glued to an auxiliary ("don't")."""
    if start == 0 or not lower[start - 1].isalnum():
        return True
    if lower.startswith(("n't", "n’t"), start):
        return True
    head = re.search(r"[a-z]+$", lower[max(0, start - 8) : start])
    return bool(head) and head[0] in _AUXILIARIES and lower.startswith("n", start)


class TransformerSentiment:
    """A Hugging Face sequence classifier from a local directory; score = sum_i P(label_i) * value_i.

    Label values come from the model's ``id2label``: names containing "neg"/"neu"/"pos" map to
    -1/0/+1 (so two or three classes give P(pos) - P(neg)), and "1 star".."5 stars" map linearly
    onto [-1, 1]. Pass ``labels`` ({name: value}) for models whose labels say neither (LABEL_0...).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        labels: Mapping[str, float] | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        device: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        root = Path(path)
        if not (root / "config.json").is_file():
            raise ConfigError(
                f"sentiment model: {root} has no config.json; pass a local directory written by save_pretrained"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(str(root), local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(str(root), local_files_only=True).eval()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        names = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        self.values = label_values(names, labels)
        self.batch_size = batch_size
        self.max_length = max_length

    def score(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths batch with little padding
        values = torch.as_tensor(self.values, dtype=torch.float32, device=self.device)
        out = np.empty(len(texts), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                probs = self.model(**batch).logits.float().softmax(dim=-1)
                out[rows] = (probs @ values).cpu().numpy()
        return np.clip(out, -1.0, 1.0)


def label_values(names: Sequence[str], labels: Mapping[str, float] | None = None) -> np.ndarray:
    """The sentiment value in [-1, 1] of each class name (see :class:`TransformerSentiment`)."""
    if labels is not None:
        missing = [n for n in names if n not in labels]
        if missing:
            raise ConfigError(f"sentiment labels: no value for {missing}; the model's labels are {list(names)}")
        values = np.asarray([float(labels[n]) for n in names])
    else:
        stars = [re.fullmatch(r"\s*(\d+)\s*stars?\s*", n.lower()) for n in names]
        if all(stars):
            counts = np.asarray([int(m[1]) for m in stars if m], dtype=np.float64)
            span = counts.max() - counts.min()
            values = 2.0 * (counts - counts.min()) / span - 1.0 if span else np.zeros(len(counts))
        else:
            values = np.asarray([_polarity(n) for n in names], dtype=np.float64)
            if np.isnan(values).any() or not ((values < 0).any() and (values > 0).any()):
                raise ConfigError(
                    f"sentiment labels: cannot tell which of {list(names)} is positive or negative; pass "
                    "labels={name: value in [-1, 1]}, e.g. {'LABEL_0': -1.0, 'LABEL_1': 1.0}"
                )
    if not np.all(np.abs(values) <= 1.0):
        raise ConfigError(f"sentiment labels: values must lie in [-1, 1], got {values.tolist()}")
    return values.astype(np.float32)


def _polarity(name: str) -> float:
    lower = name.lower()
    for key, value in (("neg", -1.0), ("neu", 0.0), ("pos", 1.0)):
        if key in lower:
            return value
    return float("nan")


def load_sentiment(model: str | Path | SentimentModel | None = None, **options: Any) -> SentimentModel:
    """VADER for None, a :class:`TransformerSentiment` for a local path, or ``model`` itself."""
    if model is None or isinstance(model, str | Path):
        kind = VaderSentiment if model is None else TransformerSentiment
        valid = [name for name in inspect.signature(kind).parameters if name != "path"]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(f"sentiment model: unknown option {unknown[0]!r} for {kind.__name__}; valid: {valid}")
        return VaderSentiment(**options) if model is None else TransformerSentiment(model, **options)
    if not callable(getattr(model, "score", None)):
        raise ConfigError(
            f"sentiment model: expected None, a local path or an object with .score(texts), got {model!r}"
        )
    return model


def score_texts(
    texts: Sequence[str | None], model: str | Path | SentimentModel | None = None, **options: Any
) -> np.ndarray:
    """Sentiment of each text in [-1, 1] as float32; NaN for None or blank texts.

    HTML is stripped first (review dumps hold ``<br />``), and each distinct text is scored once:
    review logs repeat texts (copies per product variant, "Great!", "Five stars").
    """
    cleaned = clean_text(texts)
    codes, uniques = pd.factorize(pd.Series(cleaned, dtype=object), use_na_sentinel=True)
    out = np.full(len(cleaned), np.nan, dtype=np.float32)
    keep = np.asarray([bool(u) for u in uniques], dtype=bool)
    if keep.any():
        scores = np.full(len(uniques), np.nan, dtype=np.float32)
        scores[keep] = load_sentiment(model, **options).score(list(uniques[keep]))
        out = scores[codes]
    return out


def review_sentiment(
    interactions: Interactions, model: str | Path | SentimentModel | None = None, **options: Any
) -> np.ndarray:
    """Sentiment in [-1, 1] of each interaction's review (float32), NaN where it has none.

    ``model``: None for VADER (``options``: ``n_jobs``), a local Hugging Face directory
    (``options``: ``labels``, ``batch_size``, ``max_length``, ``device``) or a :class:`SentimentModel`.
    """
    if interactions.review is None:
        return np.full(len(interactions), np.nan, dtype=np.float32)
    return score_texts(interactions.review, model, **options)


def rating_sentiment(rating: np.ndarray, rating_scale: tuple[float, float] = (1.0, 5.0)) -> np.ndarray:
    """Star ratings mapped linearly onto [-1, 1] (scale minimum -1, midpoint 0); NaN stays NaN."""
    low, high = rating_scale
    if not high > low:
        raise ConfigError(f"rating_scale: need (low, high) with high > low, got {rating_scale!r}")
    return np.clip(2.0 * (np.asarray(rating, dtype=np.float64) - low) / (high - low) - 1.0, -1.0, 1.0)


def sentiment_weights(
    interactions: Interactions,
    sentiment: np.ndarray,
    *,
    floor: float = 0.0,
    strength: float = 1.0,
    rating_scale: tuple[float, float] = (1.0, 5.0),
) -> np.ndarray:
    """New interaction weights: ``weight * max(floor, 1 + strength * min(0, s))`` (float32).

    ``s`` is the evidence of each event: with ``r`` the rating mapped to [-1, 1] (1 star -> -1,
    3 -> 0, 5 -> +1) and ``t`` the review's sentiment, ``s = r`` when ``r > 0``, else the smaller of
    ``r`` and ``t`` (either alone when the other is missing; 0 when both are). Why:

    * only negative evidence lowers a weight; positives never raise it, since meeting an item is
      already the signal and VADER's positivity bias would reward long reviews;
    * an explicit positive star outranks the text: a lexicon misreads negation and sarcasm;
    * otherwise the stronger complaint counts, so a one-star review weighs ``floor`` (with the
      default ``strength`` 1) whatever its text, and a three-star rant weighs less than praise.

    The current ``weight`` (e.g. a purchase's higher weight) is kept as a factor. With
    ``floor=0`` such events get weight 0: drop them (``interactions.take(w > 0)``) for models
    that treat any stored entry as a positive.
    """
    if not 0.0 <= floor <= 1.0:
        raise ConfigError(f"sentiment_weights: floor must be in [0, 1], got {floor!r}")
    if not strength >= 0.0:
        raise ConfigError(f"sentiment_weights: strength must be >= 0, got {strength!r}")
    text = np.asarray(sentiment, dtype=np.float64)
    if text.shape != (len(interactions),):
        raise DataError(
            f"sentiment_weights: sentiment has shape {text.shape}, expected ({len(interactions)},) "
            "(one score per interaction; NaN where there is no review)"
        )
    if (np.abs(text) > 1.0).any():
        bad = int(np.flatnonzero(np.abs(text) > 1.0)[0])
        raise DataError(f"sentiment_weights: sentiment must lie in [-1, 1] or be NaN; row {bad} holds {text[bad]}")
    stars = rating_sentiment(interactions.rating, rating_scale)
    negative = np.fmin(stars, text)  # fmin ignores a NaN side; NaN only where both are missing
    evidence = np.where(stars > 0, stars, np.nan_to_num(negative, nan=0.0))
    factor = np.maximum(floor, 1.0 + strength * np.minimum(0.0, evidence))
    return (interactions.weight * factor).astype(np.float32)


def with_sentiment_weights(
    interactions: Interactions,
    sentiment: np.ndarray | None = None,
    *,
    model: str | Path | SentimentModel | None = None,
    floor: float = 0.0,
    strength: float = 1.0,
    rating_scale: tuple[float, float] = (1.0, 5.0),
    **options: Any,
) -> Interactions:
    """A copy of ``interactions`` with :func:`sentiment_weights` as its weights.

    Reviews are scored with ``model`` and ``options`` (see :func:`review_sentiment`) unless
    ``sentiment`` is given.
    """
    if sentiment is None:
        sentiment = review_sentiment(interactions, model, **options)
    weights = sentiment_weights(interactions, sentiment, floor=floor, strength=strength, rating_scale=rating_scale)
    return dataclasses.replace(interactions, weight=weights)
