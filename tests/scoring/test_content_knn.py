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
    """Four items with the same title; three reviewed (two about camping, one about a story), one not."""
    items = Vocabulary(["tent", "stove", "novel", "poems"], "item")
    catalog = ItemCatalog(items, text={"title": np.array(["A product"] * 3 + ["Another product"], dtype=object)})
    users = Vocabulary(["hiker", "camper", "reader"], "user")
    reviews = np.array(
        ["Kept us dry on a rainy mountain hike", "Boiled water fast at camp on our mountain hike", "A moving story"],
        dtype=object,
    )
    train = Interactions([0, 1, 2], [0, 1, 2], [1, 2, 3], users, items, rating=[5.0, 5.0, 4.0], review=reviews)
    return train, catalog


_TINY_LSA = pytest.mark.filterwarnings("ignore:LexicalEncoder:UserWarning", "ignore::RuntimeWarning")  # 4 texts


@_TINY_LSA
def test_reviews_tell_apart_items_whose_text_is_the_same():
    train, catalog = _reviewed_shop()
    hiker = np.array([0])
    plain = ContentKNNScorer(encoder="lexical").fit(train, catalog).score(train, hiker)[0]
    assert plain[1] == pytest.approx(plain[2])  # same title, same score
    scorer = ContentKNNScorer(encoder="lexical", reviews_weight=0.5).fit(train, catalog)
    mixed = scorer.score(train, hiker)[0]
    assert mixed[1] > mixed[2]  # the stove's reviews speak of hiking, like the hiker's tent
    assert scorer.review_vectors_ is not None and not scorer.review_vectors_[3].any()  # never reviewed


@_TINY_LSA
def test_items_without_reviews_are_scored_by_text_alone():
    from facetrec.scoring.base import history_matrix
    from facetrec.scoring.content_knn import cosine_scores, standardize

    train, catalog = _reviewed_shop()
    scorer = ContentKNNScorer(encoder="lexical", reviews_weight=0.7).fit(train, catalog)
    users = np.array([0, 1, 2])
    weights = history_matrix(train, users, "weight")
    text = standardize(cosine_scores(weights, scorer.item_vectors_)[0])
    reviewed = np.array([True, True, True, False])
    reviews = standardize(cosine_scores(weights, scorer.review_vectors_)[0], reviewed)
    scores = scorer.score(train, users)
    np.testing.assert_allclose(scores[:, 3], text[:, 3], rtol=1e-5)  # no reviews: text alone
    mixed = standardize(0.3 * text + 0.7 * reviews, reviewed)[:, :3]
    within = text[:, :3]
    expected = within.mean(axis=1, keepdims=True) + np.maximum(within.std(axis=1, keepdims=True), 1e-6) * mixed
    np.testing.assert_allclose(scores[:, :3], expected, rtol=1e-5, atol=1e-6)
    # reviewed items keep the mean and spread their text gives them
    np.testing.assert_allclose(scores[:, :3].mean(axis=1), within.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(scores[:, :3].std(axis=1), np.maximum(within.std(axis=1), 1e-6), atol=1e-5)


def test_standardize_uses_the_given_columns():
    from facetrec.scoring.content_knn import standardize

    scores = np.array([[1.0, 3.0, 100.0], [2.0, 2.0, 2.0]])
    z = standardize(scores, np.array([True, True, False]))
    np.testing.assert_allclose(z[0, :2], [-1.0, 1.0])
    assert np.isfinite(z).all() and not z[1].any()  # a constant row stays finite


def test_reviews_weight_needs_reviews_and_a_valid_share():
    train, catalog = _reviewed_shop()
    with pytest.raises(ConfigError, match="reviews_weight"):
        ContentKNNScorer(reviews_weight=1.5)
    with pytest.raises(ConfigError, match="template"):
        ContentKNNScorer(template="movies")
    no_text = Interactions(train.user_idx, train.item_idx, train.timestamp, train.users, train.items)
    with pytest.raises(DataError, match="no review text"):
        ContentKNNScorer(encoder="lexical", reviews_weight=0.3).fit(no_text, catalog)


@_TINY_LSA
def test_review_vectors_survive_save_and_load(tmp_path):
    train, catalog = _reviewed_shop()
    scorer = ContentKNNScorer(encoder="lexical", reviews_weight=0.5).fit(train, catalog)
    scorer.save(tmp_path / "model")
    loaded = ContentKNNScorer.load(tmp_path / "model")
    users = np.array([0, 1, 2])
    np.testing.assert_allclose(loaded.score(train, users), scorer.score(train, users))
