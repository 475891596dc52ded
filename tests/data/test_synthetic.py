"""The synthetic generator: shapes, determinism and the known answers other tests rely on."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from facetrec.data.synthetic import (
    MIXED_PHRASES,
    NEGATIVE_PHRASES,
    POSITIVE_PHRASES,
    TOPICS,
    SynthConfig,
    SyntheticData,
    generate,
)
from facetrec.errors import ConfigError
from facetrec.types import Event

CONFIG = SynthConfig(n_users=500, n_items=400, review_share=0.5, seed=3)
DAY = 86_400


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(CONFIG)


def _event_topics(data: SyntheticData) -> np.ndarray:
    return data.item_topic[data.dataset.interactions.item_idx]


def _on_interest(data: SyntheticData) -> np.ndarray:
    """Per event, whether its item's topic is one of its user's interests."""
    inter = data.dataset.interactions
    padded = np.full((inter.n_users, CONFIG.max_interests), -1)
    for u, topics in enumerate(data.user_topics):
        padded[u, : len(topics)] = topics
    return (padded[inter.user_idx] == _event_topics(data)[:, None]).any(1)


def _arrays(data: SyntheticData) -> list[np.ndarray]:
    inter, cat = data.dataset.interactions, data.dataset.catalog
    return [inter.user_idx, inter.item_idx, inter.timestamp, inter.event, inter.rating, inter.review,
            data.item_topic, cat.text["title"], cat.text["description"], cat.numeric["price"], cat.created_at,
            *data.user_topics, *data.user_weights]  # fmt: skip


def test_same_seed_gives_identical_data_and_another_seed_differs() -> None:
    small = SynthConfig(n_users=80, n_items=60, seed=11)
    a, b = generate(small), generate(small)
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    c = generate(SynthConfig(n_users=80, n_items=60, seed=12))
    assert not np.array_equal(a.item_topic, c.item_topic)
    assert len(a.dataset.interactions) != len(c.dataset.interactions) or not np.array_equal(
        a.dataset.interactions.item_idx, c.dataset.interactions.item_idx
    )


def test_shapes_and_counts_match_config(data: SyntheticData) -> None:
    inter, cat = data.dataset.interactions, data.dataset.catalog
    assert data.dataset.name == "synthetic"
    assert (inter.n_users, inter.n_items, len(cat)) == (CONFIG.n_users, CONFIG.n_items, CONFIG.n_items)
    assert inter.users.ids[0] == "u00001"
    assert inter.items.ids[-1] == "i00400"
    assert inter.items is cat.items
    assert data.topic_names == tuple(t.name for t in TOPICS[: CONFIG.n_topics])
    assert data.item_topic.shape == (CONFIG.n_items,)
    assert data.item_topic.min() >= 0
    assert data.item_topic.max() < CONFIG.n_topics
    assert len(np.unique(data.item_topic)) == CONFIG.n_topics
    assert len(data.user_topics) == len(data.user_weights) == CONFIG.n_users
    for topics, weights in zip(data.user_topics, data.user_weights, strict=True):
        assert CONFIG.min_interests <= len(topics) <= CONFIG.max_interests
        assert len(np.unique(topics)) == len(topics) == len(weights)
        assert topics.min() >= 0
        assert topics.max() < CONFIG.n_topics
        assert np.all(weights > 0)
        assert weights.sum() == pytest.approx(1.0)
    assert {len(t) for t in data.user_topics} == set(range(1, 6))
    assert np.bincount(inter.user_idx, minlength=inter.n_users).min() >= 3
    assert len(inter) / inter.n_users == pytest.approx(CONFIG.mean_events_per_user, rel=0.15)
    assert set(cat.text) == {"title", "description"}
    assert all(cat.text["title"])
    assert all(c == (TOPICS[k].category,) for c, k in zip(cat.categories, data.item_topic, strict=True))
    assert all(len(t) == 2 and set(t) <= set(TOPICS[k].tags) for t, k in zip(cat.tags, data.item_topic, strict=True))
    assert np.all(cat.numeric["price"] >= 0)
    assert np.isfinite(cat.created_at).all()


def test_events_are_sorted_and_ratings_reviews_sit_on_their_event_kinds(data: SyntheticData) -> None:
    inter = data.dataset.interactions
    assert np.all(np.diff(inter.user_idx) >= 0)
    same_user = np.diff(inter.user_idx) == 0
    assert np.all(np.diff(inter.timestamp)[same_user] >= 0)
    rated = np.isin(inter.event, [Event.RATE, Event.REVIEW])
    assert np.all(np.isnan(inter.rating) != rated)
    assert set(np.unique(inter.rating[rated])) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    has_review = np.array([r is not None for r in inter.review])
    np.testing.assert_array_equal(has_review, inter.event == Event.REVIEW)
    assert set(np.unique(inter.event)) == {int(e) for e in Event}


def test_users_mostly_act_on_their_interest_topics(data: SyntheticData) -> None:
    inter = data.dataset.interactions
    share = np.bincount(inter.user_idx, weights=_on_interest(data)) / np.bincount(inter.user_idx)
    assert share.mean() >= 0.8
    assert share.mean() < 1.0  # a little noise on other topics


def test_ratings_are_higher_on_interest_topics(data: SyntheticData) -> None:
    inter = data.dataset.interactions
    rated = ~np.isnan(inter.rating)
    liked = _on_interest(data)
    assert inter.rating[rated & liked].mean() > inter.rating[rated & ~liked].mean() + 0.5


def test_no_event_precedes_its_item_and_some_items_arrive_late(data: SyntheticData) -> None:
    inter, cat = data.dataset.interactions, data.dataset.catalog
    assert np.all(inter.timestamp >= cat.created_at[inter.item_idx])
    start = np.datetime64(CONFIG.start, "s").astype(np.int64)
    late = cat.created_at > start + CONFIG.days * DAY / 2
    assert late.sum() == round(CONFIG.new_item_share * CONFIG.n_items)
    assert np.isin(np.flatnonzero(late), inter.item_idx).any()


def test_popularity_is_long_tailed(data: SyntheticData) -> None:
    counts = np.sort(np.bincount(data.dataset.interactions.item_idx, minlength=CONFIG.n_items))[::-1]
    assert counts[: CONFIG.n_items // 10].sum() >= 0.35 * counts.sum()


def test_review_wording_agrees_with_rating(data: SyntheticData) -> None:
    inter = data.dataset.interactions
    reviewed = inter.event == Event.REVIEW
    by_stars = {s: inter.review[reviewed & (inter.rating == s)] for s in (1, 3, 5)}
    assert all(len(texts) >= 5 for texts in by_stars.values())

    def has(texts: np.ndarray, phrases: tuple[str, ...]) -> np.ndarray:
        return np.array([any(p in t for p in phrases) for t in texts])

    assert has(by_stars[5], POSITIVE_PHRASES).all()
    assert not has(by_stars[5], NEGATIVE_PHRASES).any()
    assert has(by_stars[1], NEGATIVE_PHRASES).all()
    assert not has(by_stars[1], POSITIVE_PHRASES).any()
    assert has(by_stars[3], MIXED_PHRASES).all()
    assert not has(by_stars[3], POSITIVE_PHRASES + NEGATIVE_PHRASES).any()


def test_timestamps_span_the_configured_months(data: SyntheticData) -> None:
    ts = data.dataset.interactions.timestamp
    start = np.datetime64(CONFIG.start, "s").astype(np.int64)
    assert ts.dtype == np.int64
    assert ts.min() >= start
    assert ts.max() < start + CONFIG.days * DAY
    assert ts.max() - ts.min() >= 90 * DAY


def test_interest_proportions_drift(data: SyntheticData) -> None:
    """The first half of a user's events follows the start weights more closely than the second."""
    inter = data.dataset.interactions
    offsets, topics = inter.user_offsets(), _event_topics(data)
    early, late = [], []
    for u, (mine, weights) in enumerate(zip(data.user_topics, data.user_weights, strict=True)):
        own = topics[offsets[u] : offsets[u + 1]]
        if len(mine) < 2 or len(own) < 10:
            continue
        counts = own[:, None] == mine[None, :]
        half = len(own) // 2
        for part, out in ((counts[:half], early), (counts[half:], late)):
            out.append(np.abs(part.sum(0) / max(part.sum(), 1) - weights).sum())
    assert len(early) > 100
    assert np.mean(late) - np.mean(early) > 0.1


def test_topics_have_distinct_vocabulary() -> None:
    assert len(TOPICS) >= 12
    data = generate(SynthConfig(n_users=50, n_items=2000, n_topics=len(TOPICS), seed=5))
    words: list[set[str]] = [set() for _ in TOPICS]
    text = data.dataset.catalog.text
    for k, title, description in zip(data.item_topic, text["title"], text["description"], strict=True):
        words[k] |= set(re.findall(r"[a-z][a-z'-]*", f"{title} {description}".lower()))
    for a, b in itertools.combinations(range(len(TOPICS)), 2):
        assert len(words[a] & words[b]) / len(words[a] | words[b]) < 0.2, (TOPICS[a].name, TOPICS[b].name)


def test_config_knobs_take_effect() -> None:
    data = generate(SynthConfig(n_users=60, n_items=50, n_topics=4, min_interests=2, max_interests=2,
                                new_item_share=0.0, review_share=0.0, mean_events_per_user=3.0))  # fmt: skip
    inter = data.dataset.interactions
    assert {len(t) for t in data.user_topics} == {2}
    assert data.item_topic.max() == 3
    assert not (data.dataset.catalog.created_at >= np.datetime64("2024-01-01", "s").astype(np.int64)).any()
    assert not (inter.event == Event.REVIEW).any()
    assert np.all(np.bincount(inter.user_idx) == 3)


def test_save_and_load_round_trip(data: SyntheticData, tmp_path) -> None:
    data.save(tmp_path)
    back = SyntheticData.load(tmp_path)
    for x, y in zip(_arrays(data), _arrays(back), strict=True):
        np.testing.assert_array_equal(x, y)
    assert back.topic_names == data.topic_names
    assert list(back.dataset.catalog.tags) == list(data.dataset.catalog.tags)
    assert back.dataset.extras["synthetic_config"]["seed"] == CONFIG.seed
    item_topic, topics, weights, names = SyntheticData.load_truth(tmp_path)
    np.testing.assert_array_equal(item_topic, data.item_topic)
    assert len(topics) == len(weights) == CONFIG.n_users
    assert names == data.topic_names
    np.testing.assert_allclose(weights[7], data.user_weights[7])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_users", 0),
        ("n_items", 5),
        ("n_topics", 1),
        ("n_topics", len(TOPICS) + 1),
        ("min_interests", 0),
        ("max_interests", 13),
        ("mean_events_per_user", 2.0),
        ("days", 0),
        ("new_item_share", 0.9),
        ("review_share", -0.1),
        ("seed", -1),
        ("start", "yesterday"),
        ("n_users", 2.5),
    ],
)
def test_invalid_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        SynthConfig(**{field: value})
