from typing import Any, ClassVar

import numpy as np
import pytest

from facetrec.data.split import leave_one_out
from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.protocol import EvalConfig, cold_targets, evaluate
from facetrec.ids import Vocabulary
from facetrec.scoring.content_knn import ContentKNNScorer, recent_events
from facetrec.scoring.popularity import PopularityScorer
from facetrec.testing import ScorerConformance, small_synthetic
from facetrec.types import Interactions, ItemCatalog


class TestLexicalContentConformance(ScorerConformance):
    component = ContentKNNScorer
    params: ClassVar[dict[str, Any]] = {"encoder": "lexical"}


def test_minilm_profile_prefers_items_about_the_same_thing(tmp_path):
    items = Vocabulary(["space", "rocket", "cake", "bread"], "item")
    catalog = ItemCatalog(
        items,
        text={
            "title": np.array(
                [
                    "A space opera about starships",
                    "Rocket launch to the orbiting station",
                    "Chocolate cake recipe",
                    "Sourdough bread baking guide",
                ],
                dtype=object,
            )
        },
    )
    users = Vocabulary(["fan"], "user")
    history = Interactions([0], [0], [0], users, items)
    scorer = ContentKNNScorer(store_dir=str(tmp_path / "store")).fit(history, catalog)
    scores = scorer.score(history, np.array([0]))[0]
    assert scores[1] > scores[2] and scores[1] > scores[3]  # rocket beats cake and bread
    assert any((tmp_path / "store").iterdir())  # embeddings were cached


def test_recent_events_keeps_the_last_n_and_decays_by_age():
    users, items = Vocabulary(["u", "v"], "user"), Vocabulary(["a", "b", "c"], "item")
    day = 86_400
    data = Interactions([0, 0, 0, 1], [0, 1, 2, 0], [0, 10 * day, 20 * day, 5], users, items)
    recent = recent_events(data, np.array([0]), length=2, half_life_days=10.0)
    assert recent.item_idx.tolist() == [1, 2]
    np.testing.assert_allclose(recent.weight, [0.5, 1.0])


def test_cold_items_are_reachable_unlike_popularity():
    synthetic = small_synthetic()
    data = synthetic.dataset
    split = leave_one_out(data.interactions)
    counts = np.bincount(split.train.item_idx, minlength=data.interactions.n_items)
    # make cold targets: hide every test target's item from training
    hide = np.isin(split.train.item_idx, split.test.targets.item_idx)
    train = split.train.take(~hide)
    counts = np.bincount(train.item_idx, minlength=data.interactions.n_items)
    cold = cold_targets(split.test, counts)
    config = EvalConfig(metrics=("recall@10",), bootstrap=0)
    content = evaluate(ContentKNNScorer(encoder="lexical").fit(train, data.catalog), cold, config)
    pop = evaluate(PopularityScorer().fit(train), cold, config)
    assert pop.summary["recall@10"] == 0 and content.summary["recall@10"] > 0.02


def test_needs_a_catalogue_and_valid_config():
    data = small_synthetic().dataset.interactions
    with pytest.raises(DataError, match="needs the item catalogue"):
        ContentKNNScorer(encoder="lexical").fit(data)
    with pytest.raises(ConfigError, match="half_life_days"):
        ContentKNNScorer(half_life_days=0.0)


def _reviewed_shop() -> tuple[Interactions, ItemCatalog]:
    items = Vocabulary(["tent", "stove", "novel", "poems"], "item")
    catalog = ItemCatalog(
        items,
        text={
            "title": np.array(
                ["Two-person tent", "Camping stove", "A long novel", "Collected poems"],
                dtype=object,
            )
        },
    )
    users = Vocabulary(["hiker", "reader"], "user")
    reviews = np.array(
        ["Kept us dry on a rainy mountain hike", "Boiled water fast at camp on the hike", "A moving story"],
        dtype=object,
    )
    train = Interactions([0, 0, 1], [0, 1, 2], [1, 2, 3], users, items, rating=[5.0, 5.0, 4.0], review=reviews)
    return train, catalog


def test_reviews_weight_blends_review_vectors_into_reviewed_items_only():
    train, catalog = _reviewed_shop()
    plain = ContentKNNScorer(encoder="lexical").fit(train, catalog)
    mixed = ContentKNNScorer(encoder="lexical", reviews_weight=0.5).fit(train, catalog)
    np.testing.assert_allclose(np.linalg.norm(mixed.item_vectors_, axis=1), 1.0, rtol=1e-5)
    # the two camping items share review words ("hike", "camp"), so they move closer together
    assert mixed.item_vectors_[0] @ mixed.item_vectors_[1] > plain.item_vectors_[0] @ plain.item_vectors_[1]
    scores = mixed.score(train, np.array([0, 1]))
    assert scores.shape == (2, 4) and np.isfinite(scores).all()


def test_blend_keeps_text_where_an_item_has_no_reviews():
    from facetrec.scoring.content_knn import blend
    from facetrec.types import ItemEmbeddings

    items = Vocabulary(["a", "b"], "item")
    text = ItemEmbeddings(np.array([[1.0, 0.0], [0.0, 2.0]]), items, "t")
    reviews = ItemEmbeddings(np.array([[0.0, 1.0], [0.0, 0.0]]), items, "r", "reviews")
    mixed = blend(text, reviews, 0.5)
    np.testing.assert_allclose(mixed.vectors, [[2**-0.5, 2**-0.5], [0.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(blend(text, reviews, 1.0).vectors[0], [0.0, 1.0])
    assert mixed.modality == "text+reviews" and mixed.normalized


def test_reviews_weight_needs_reviews_and_a_valid_share():
    train, catalog = _reviewed_shop()
    with pytest.raises(ConfigError, match="reviews_weight"):
        ContentKNNScorer(reviews_weight=1.5)
    no_text = Interactions(train.user_idx, train.item_idx, train.timestamp, train.users, train.items)
    with pytest.raises(DataError, match="no review text"):
        ContentKNNScorer(encoder="lexical", reviews_weight=0.3).fit(no_text, catalog)
