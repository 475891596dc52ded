"""The language-model re-ranker: training changes only the adapter (and a new head), merged and
unmerged weights and a saved copy score alike, its order follows its weights, and a Recommender
serves through it. Tiny random models are built from their configs; nothing is downloaded."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch

from facetrec.data.filters import first_occurrences
from facetrec.data.split import leave_one_out
from facetrec.errors import ConfigError, DataError
from facetrec.ranking import RankConfig
from facetrec.ranking.lm_rerank import LMRerankConfig, LMReranker, PairScorer
from facetrec.ranking.retrieval import CandidatePool
from facetrec.recommender import Recommender
from facetrec.scoring.popularity import PopularityScorer
from facetrec.testing import small_synthetic
from facetrec.types import ItemCatalog, Query
from tests.content.test_text_tuning import catalogue_words, make_tiny_model

SMALL = {"top": 8, "negatives": 3, "examples": 48, "valid_users": 16, "item_tokens": 8, "history_items": 3,
         "epochs": 1, "batch_size": 8, "lr": 5e-3, "progress": False}  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    words = catalogue_words()
    return {kind: make_tiny_model(tmp_path_factory.mktemp(f"rerank-{kind}"), kind, words) for kind in ("bert", "gpt2")}


@pytest.fixture(scope="module")
def data():
    syn = small_synthetic()
    split = leave_one_out(first_occurrences(syn.dataset.interactions))
    return syn.dataset.catalog, split, PopularityScorer().fit(split.train)


@pytest.fixture(scope="module")
def fitted(models, data) -> LMReranker:
    catalog, split, retriever = data
    return LMReranker(model=str(models["bert"]), **SMALL).fit(split.train, catalog, retriever, split.valid)


def _base(model: PairScorer) -> dict[str, torch.Tensor]:
    own = {id(p) for p in model.adapter}
    return {n: p.detach().clone() for n, p in model.peft.named_parameters() if id(p) not in own}


def test_training_changes_only_the_adapter_and_head(models, data, fitted: LMReranker) -> None:
    torch.manual_seed(0)
    fresh = PairScorer(fitted.config)
    trained = fitted._model
    assert {n: p.shape for n, p in _base(trained).items()} == {n: p.shape for n, p in _base(fresh).items()}
    assert all(torch.equal(p, _base(fresh)[n]) for n, p in _base(trained).items())
    assert not np.allclose(fitted.adapter_, fresh.adapter_vector())
    assert fitted.trainable_params_ == fresh.trainable_params < fitted.base_params_
    assert fitted.blend_ in (0.0, 0.25, 0.5, 0.75)


def test_save_load_and_merged_weights_reproduce_scores(models, data, fitted: LMReranker, tmp_path: Path) -> None:
    catalog = data[0]
    history, items = np.array([3, 17, 42]), np.arange(10)
    unmerged = fitted.scores(history, items)
    fitted.save(tmp_path / "reranker")
    loaded = LMReranker.load(tmp_path / "reranker").bind(catalog)
    assert "merged" in loaded._model.__dict__
    np.testing.assert_allclose(loaded.scores(history, items), unmerged, rtol=1e-4, atol=1e-5)
    assert loaded.blend_ == fitted.blend_


def test_the_order_changes_when_the_weights_do(data, fitted: LMReranker, tmp_path: Path) -> None:
    catalog, _, _ = data
    fitted.save(tmp_path / "a")
    first, second = LMReranker.load(tmp_path / "a"), LMReranker.load(tmp_path / "a")
    second.adapter_ = second.adapter_ + np.random.default_rng(1).normal(0, 0.5, second.adapter_.shape).astype(
        np.float32
    )
    pool = CandidatePool(idx=np.arange(8), relevance=np.linspace(1.0, 0.3, 8), interest=np.zeros(8, np.int32),
                         weights=np.ones(1), vectors=np.zeros((8, 0)))  # fmt: skip
    history = np.array([20, 21])
    orders = []
    for reranker in (first, second):
        reranker.blend_ = 0.0
        rescored = reranker.bind(catalog).rescore(pool, history)
        assert sorted(rescored.relevance) == sorted(pool.relevance)  # the places keep their relevance
        orders.append(np.argsort(-rescored.relevance, kind="stable"))
    assert not np.array_equal(orders[0], orders[1])


def test_a_recommender_serves_through_the_reranker(data, fitted: LMReranker, tmp_path: Path) -> None:
    catalog, split, retriever = data
    fitted.save(tmp_path / "reranker")
    plain = Recommender(retriever, catalog, split.train)
    reranked = Recommender(retriever, catalog, split.train, RankConfig(rerank_model=str(tmp_path / "reranker")))
    user = str(split.train.users.id_of(0))
    before = plain.recommend(Query(user_id=user, n=fitted.config.top))
    after = reranked.recommend(Query(user_id=user, n=fitted.config.top))
    assert set(after.ids) == set(before.ids)  # the retriever's best, re-ordered
    seen = np.unique(split.train.item_idx[split.train.user_idx == 0])  # what a score-ranked list's history is
    expected = fitted.bind(catalog).order(seen, before.idx, before.scores)
    assert list(after.ids) == list(before.ids[expected])
    assert plain.recommend(Query(user_id=user, n=5), rerank_model=str(tmp_path / "reranker")).ids.tolist() == list(
        after.ids[:5]
    )


def test_a_decoder_answers_yes_or_no(models, data, tmp_path: Path) -> None:
    catalog, split, retriever = data
    reranker = LMReranker(model=str(models["gpt2"]), blend=0.5, **SMALL).fit(split.train, catalog, retriever)
    assert reranker._model.head == "yesno"
    history, items = np.array([1, 2]), np.arange(6)
    unmerged = reranker.scores(history, items)
    assert np.isfinite(unmerged).all() and np.ptp(unmerged) > 0
    reranker.save(tmp_path / "decoder")
    np.testing.assert_allclose(
        LMReranker.load(tmp_path / "decoder").bind(catalog).scores(history, items), unmerged, rtol=1e-4, atol=1e-5
    )


def test_bad_settings_and_inputs_are_clear_errors(models, data, fitted: LMReranker, tmp_path: Path) -> None:
    catalog, split, retriever = data
    with pytest.raises(ConfigError, match="head"):
        LMRerankConfig(head="listwise")
    with pytest.raises(ConfigError, match="tuning"):
        LMRerankConfig(tuning="prefix")
    with pytest.raises(DataError, match="valid="):
        LMReranker(model=str(models["bert"]), **SMALL).fit(split.train, catalog, retriever)
    with pytest.raises(ConfigError, match="does not exist"):
        LMReranker(model=str(tmp_path / "missing"), blend=0.5, **SMALL).fit(split.train, catalog, retriever)
    with pytest.raises(ConfigError, match="has none"):
        fitted.bind(ItemCatalog(catalog.items))
    with pytest.raises(ConfigError, match="rerank_model"):
        RankConfig(rerank_model=None)
