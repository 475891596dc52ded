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
