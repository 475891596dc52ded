import json

import numpy as np
import pytest

from facetrec.errors import ConfigError, DataError, UnknownIdError
from facetrec.ranking import RankConfig
from facetrec.recommender import Recommender, fit_recommender
from facetrec.scoring.facet import FacetScorer
from facetrec.scoring.popularity import PopularityScorer
from facetrec.testing import small_synthetic
from facetrec.types import Query

PARAMS = {"encoder": "lexical", "hidden": 32, "lr": 3e-3, "dropout": 0.2, "epochs": 8, "progress": False}


@pytest.fixture(scope="module")
def data():
    return small_synthetic().dataset


@pytest.fixture(scope="module")
def recommender(data):
    return fit_recommender(data, "facet", PARAMS, RankConfig(candidates=50), first_only=True)


def user(data, u=3):
    return str(data.interactions.users.id_of(u))


def seen(data, u=3):
    return set(data.interactions.items.id_of(data.interactions.item_idx[data.interactions.user_idx == u]))


def test_recommend_known_user_never_returns_seen_or_excluded(data, recommender):
    first = recommender.recommend(Query(user_id=user(data), n=10))
    assert len(first) == 10 and not seen(data) & set(first.ids)
    blocked = tuple(first.ids[:3])
    again = recommender.recommend(Query(user_id=user(data), n=10, exclude=blocked))
    assert not set(blocked) & set(again.ids)
    assert first.fields["interest"].min() >= 0


def test_new_user_from_raw_history_and_anonymous_session(data, recommender):
    history = tuple(data.interactions.items.id_of(np.array([1, 2, 3])))
    found = recommender.recommend(Query(user_id="brand-new", history=history, n=5))
    assert len(found) == 5 and not set(history) & set(found.ids)
    session = recommender.recommend(Query(history=history, n=5))
    np.testing.assert_array_equal(session.ids, found.ids)  # same history, same list


def test_empty_history_falls_back_to_popularity(data, recommender):
    with pytest.raises(UnknownIdError, match="unknown user id 'nobody'"):
        recommender.recommend(Query(user_id="nobody", n=5))
    found = recommender.recommend(Query(n=5), explain=True)
    counts = np.bincount(recommender.history.item_idx, minlength=len(recommender.catalog))
    assert set(found.idx) == set(np.argsort(-counts, kind="stable")[:5])
    assert (found.fields["interest"] == -1).all() and found.fields["explanation"][0] == "Popular right now"


def test_events_change_the_next_recommendation(data, recommender):
    rec = Recommender(recommender.scorer, recommender.catalog, recommender.history, recommender.ranking)
    query = Query(user_id=user(data, 5), n=10)
    before = rec.recommend(query)
    clicked = [str(i) for i in before.ids[:3]]
    rec.add_events([user(data, 5)] * 3, clicked, [10**10, 10**10 + 1, 10**10 + 2], ["click"] * 3)
    after = rec.recommend(query)
    assert not set(clicked) & set(after.ids)  # now seen
    assert list(after.ids) != list(before.ids)
    with pytest.raises(UnknownIdError, match="'nope'"):
        rec.add_events(["u"], ["nope"], [1])
    with pytest.raises(DataError, match="unknown event type 'like'"):
        rec.add_events(["u"], [clicked[0]], [1], ["like"])


def test_explanations_name_real_history_items(data, recommender):
    found = recommender.recommend(Query(user_id=user(data), n=5), explain=True, diversity="mmr", lam=0.5)
    history = {recommender.catalog.title(i) for i in np.flatnonzero(np.isin(data.catalog.items.ids, list(seen(data))))}
    for text, because in zip(found.fields["explanation"], found.fields["because"], strict=True):
        assert because and all(recommender.catalog.title(i) in history for i in because)
        assert recommender.catalog.title(because[0]) in text
    state, labels = recommender.interests(Query(user_id=user(data)))
    assert len(labels) == state.k and all(isinstance(label, str) and label for label in labels)


def test_bundle_round_trip_gives_identical_lists(data, recommender, tmp_path):
    recommender.save(tmp_path / "bundle")
    loaded = Recommender.load(tmp_path / "bundle")
    assert isinstance(loaded.scorer, FacetScorer) and loaded.ranking == recommender.ranking
    query = Query(user_id=user(data), n=10)
    a = recommender.recommend(query, explain=True, diversity="dpp", lam=0.6)
    b = loaded.recommend(query, explain=True, diversity="dpp", lam=0.6)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    manifest["format"] = "something-else"
    (tmp_path / "bundle" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="not a facetrec bundle"):
        Recommender.load(tmp_path / "bundle")
    with pytest.raises(ConfigError, match="no manifest.json"):
        Recommender.load(tmp_path)


def test_similar_items_exclude_the_item_itself(data, recommender):
    item = str(data.catalog.items.id_of(7))
    found = recommender.similar(item, n=5)
    assert len(found) == 5 and item not in set(found.ids)
    vectors = recommender.scorer.item_vectors()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit[7]
    cosine[7] = -np.inf
    assert found.idx[0] == int(np.argmax(cosine))


def test_a_model_without_item_vectors_ranks_its_scores_and_says_what_needs_vectors(data):
    scorer = PopularityScorer().fit(data.interactions)
    plain = Recommender(scorer, data.catalog, data.interactions)
    found = plain.recommend(Query(user_id=user(data), n=5))
    scores = scorer.score(plain.user_history(Query(user_id=user(data))), np.array([0]))[0].astype(float)
    scores[[data.catalog.items.index(i) for i in seen(data)]] = -np.inf
    assert found.idx.tolist() == np.lexsort((np.arange(len(scores)), -scores))[:5].tolist()
    with pytest.raises(ConfigError, match="no item embeddings"):
        plain.similar(str(data.catalog.items.id_of(7)))
    with pytest.raises(ConfigError, match="compares items by their vectors"):
        plain.recommend(Query(user_id=user(data), n=5), diversity="mmr")


def test_items_added_while_serving_are_encoded_alone_and_scored_by_a_cold_item_model(data, tmp_path):
    from facetrec.ids import Vocabulary
    from facetrec.types import ItemCatalog

    rec = fit_recommender(data, "content", {"encoder": "lexical"}, encoder="auto")
    assert rec.embeddings is not None and rec.encoder.fitted_items == len(data.catalog)
    twin = str(data.catalog.items.id_of(5))
    c = data.catalog
    text = {k: v[[5]] for k, v in c.text.items()}
    new = ItemCatalog(Vocabulary(["new-1"], "item"), text, c.categories[[5]], c.tags[[5]])
    assert rec.add_items(new) == 1
    assert len(rec.catalog) == len(data.catalog) + 1 and rec.scorer.n_items_ == len(rec.catalog)
    # the text of item 5, so its vector: a history of item 5 finds the new item first
    np.testing.assert_allclose(rec.embeddings.vectors[-1], rec.embeddings.vectors[5], atol=1e-6)
    found = rec.recommend(Query(history=(twin,), n=3))
    assert "new-1" in set(found.ids)
    rec.save(tmp_path / "grown")
    back = Recommender.load(tmp_path / "grown")
    assert back.recommend(Query(history=(twin,), n=3)).ids.tolist() == found.ids.tolist()
    # an ID-only model cannot score the new item: it is never returned, and nothing breaks
    ease = fit_recommender(data, "ease", {}, encoder="lexical")
    ease.add_items(new)
    everything = ease.recommend(Query(user_id=user(data), n=len(ease.catalog) - len(seen(data)) - 1))
    assert "new-1" not in set(everything.ids)


def test_free_text_encodes_only_the_text_with_the_bundles_encoder(data, tmp_path):
    fit_recommender(data, "ease", {}, encoder="lexical").save(tmp_path / "b")
    loaded = Recommender.load(tmp_path / "b")
    assert loaded.embeddings is not None and loaded.encoder.config.encoder == "lexical"
    encoded: list[list[str]] = []
    original = loaded.encoder.encode_texts

    def counting(texts, catalog=None):
        encoded.append(list(texts))
        return original(texts, catalog)

    text = loaded.encoder.texts(data.catalog)[7]
    loaded.encoder.encode_texts = counting
    loaded.encoder.encode = None  # the catalogue must come from the bundle, never be re-encoded
    found = loaded.free_text(text, 3)
    assert encoded == [[text]]
    assert found[0] == 7  # an item's own text finds it first


def test_without_events_every_model_lists_what_most_users_chose(data):
    rec = fit_recommender(data, "ease", {}, encoder="none")
    found = rec.recommend(Query(n=5), explain=True)
    users_per_item = np.bincount(np.unique(np.c_[data.interactions.user_idx, data.interactions.item_idx], axis=0)[:, 1],
                                 minlength=len(data.catalog))  # fmt: skip
    assert found.idx.tolist() == np.lexsort((np.arange(len(data.catalog)), -users_per_item))[:5].tolist()
    assert (found.fields["interest"] == -1).all() and set(found.fields["explanation"]) == {"Popular right now"}


def test_a_text_model_keeps_its_own_item_encoder_in_the_bundle(data):
    with pytest.raises(ConfigError, match="its own encoder"):
        fit_recommender(data, "content", {"encoder": "lexical"}, encoder="minilm")
    rec = fit_recommender(data, "content", {"encoder": "lexical"}, encoder="lexical")
    assert rec.encoder.config.encoder == "lexical" and rec.fit_settings == {"seed": 0, "first_only": False,
                                                                            "encoder": "lexical"}  # fmt: skip


def test_merge_auto_follows_the_facet_models_routing(data):
    soft = fit_recommender(data, "facet", {**PARAMS, "epochs": 1}, first_only=True)
    hard = fit_recommender(data, "facet", {**PARAMS, "epochs": 1, "routing": "hard"}, first_only=True)
    assert soft.ranking.interest_merge == "auto"
    assert soft.ranker()._merge_rule == "logsumexp" and hard.ranker()._merge_rule == "max"


def test_models_own_item_vectors_survive_items_added_later(data):
    from facetrec.ids import Vocabulary
    from facetrec.types import ItemCatalog

    rec = fit_recommender(data, "als", {"iterations": 3}, encoder="none")
    item = str(data.catalog.items.id_of(7))
    before = rec.similar(item, 5).ids.tolist()
    rec.add_items(ItemCatalog(Vocabulary(["later"], "item")))
    assert rec.similar(item, 5).ids.tolist() == before  # still by the model's factors; "later" has none
    assert "later" not in set(rec.recommend(Query(user_id=user(data), n=len(rec.catalog) - len(seen(data)) - 1)).ids)
