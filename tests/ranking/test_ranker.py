import numpy as np
import pytest

from facetrec.config import from_dict
from facetrec.errors import ConfigError, DataError, NotFittedError
from facetrec.ids import Vocabulary
from facetrec.ranking import RankConfig, Ranker, VectorIndex, choose_index_kind, merge_interests
from facetrec.ranking.retrieval import PQ_MIN_ITEMS, pq_subquantizers
from facetrec.types import ItemList, UserState


def random_state(rng, k, d, history=()):
    w = rng.random(k)
    history = np.asarray(history, dtype=np.int64)
    att = np.full((k, len(history)), 1.0 / max(len(history), 1))
    return UserState(rng.normal(size=(k, d)), w / w.sum(), history, att)


def test_merge_max_keeps_the_best_weighted_score_and_its_interest():
    dots = np.array([[1.0, 0.5, 0.2], [0.1, 2.0, -3.0]])  # columns: items 5, 7, 9
    state = UserState(np.eye(2, 3), [0.6, 0.4], np.zeros(0, np.int32), np.zeros((2, 0)))
    best, interest = merge_interests(state.interest_scores(dots), "max")
    # item 7: 0.6 * 0.5 = 0.3 vs 0.4 * 2.0 = 0.8 -> interest 1; item 5: 0.6 vs 0.04 -> interest 0
    np.testing.assert_allclose(best, [0.6, 0.8, 0.12])
    assert interest.tolist() == [0, 1, 0]


def test_merge_logsumexp_is_the_log_of_the_summed_probabilities():
    terms = np.log(np.array([[0.2, 0.05, 0.3], [0.1, 0.4, 0.0001]]))
    merged, interest = merge_interests(terms, "logsumexp")
    np.testing.assert_allclose(np.exp(merged), [0.3, 0.45, 0.3001])  # by hand: column sums
    from scipy.special import logsumexp  # an independent implementation

    np.testing.assert_allclose(merged, logsumexp(terms, axis=0))
    assert interest.tolist() == [0, 1, 0]
    with pytest.raises(ConfigError, match="interest merge"):
        merge_interests(terms, "mean")
    with pytest.raises(ConfigError, match="interest_merge"):
        RankConfig(interest_merge="sum")


def test_offsets_make_retrieval_rank_by_the_models_own_score():
    vectors = np.array([[1.0, 0.0], [0.9, 0.0], [0.0, 1.0], [0.0, 0.8]], np.float32)
    plain = UserState(np.eye(2), [0.9, 0.1], np.zeros(0, np.int32), np.zeros((2, 0)))
    # Interest 1 has little weight, but the model says its items are the likelier ones.
    shifted = UserState(np.eye(2), [0.9, 0.1], np.zeros(0, np.int32), np.zeros((2, 0)), offsets=[-1.5, -1.0])
    ranker = Ranker(candidates=4, interest_merge="max").fit(vectors)
    assert ranker.rank(plain, 4).idx.tolist() == [0, 1, 2, 3]  # 0.9 * dot: interest 0's items first
    out = ranker.rank(shifted, 4)  # dot + offset: 2 -> 0.0, 3 -> -0.2, 0 -> -0.5, 1 -> -0.6
    assert out.idx.tolist() == [2, 3, 0, 1]
    np.testing.assert_allclose(out.scores, [0.0, -0.2, -0.5, -0.6], atol=1e-6)
    assert out.fields["interest"].tolist() == [1, 1, 0, 0]


def test_relevance_ranking_is_the_exact_top_n_of_the_best_weighted_score():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    ranker = Ranker(candidates=50, interest_merge="max").fit(vectors)
    for _ in range(5):
        state = random_state(rng, 3, 16, history=rng.choice(500, 30, replace=False))
        out = ranker.rank(state, 10)
        weighted = state.weights[:, None] * (state.interests @ vectors.T)
        merged = weighted.max(axis=0)
        merged[state.history_idx] = -np.inf
        assert out.idx.tolist() == np.argsort(-merged)[:10].tolist()
        np.testing.assert_allclose(out.scores, np.sort(merged)[::-1][:10], rtol=1e-5)
        assert out.fields["interest"].tolist() == weighted.argmax(axis=0)[out.idx].tolist()
        assert out.fields["interest"].dtype == np.int32
        assert isinstance(out, ItemList)


def test_every_interest_can_fill_the_list_from_the_pool(planted):
    # interest 1 weighs little: the merged top 20 is all cluster 0, but quotas still find cluster-1 items
    ranker = Ranker(diversity="quotas", lam=0.0, candidates=20).fit(planted.vectors, planted.catalog)
    out = ranker.rank(planted.state([0, 1], [0.7, 0.3]), 10)
    assert np.bincount(planted.cluster[out.idx], minlength=4).tolist() == [7, 3, 0, 0]
    assert out.fields["interest"].tolist() == [0 if c == 0 else 1 for c in planted.cluster[out.idx]]


@pytest.mark.parametrize("diversity", ["mmr", "dpp"])
def test_diversifiers_spread_a_single_interest_over_clusters(planted, diversity):
    between = (planted.centres[0] + planted.centres[1]) / np.sqrt(2)
    state = UserState(between[None], [1.0], np.zeros(0, np.int32), np.zeros((1, 0)))
    plain = Ranker().fit(planted.vectors, planted.catalog).rank(state, 4)
    diverse = Ranker(diversity=diversity, lam=0.2).fit(planted.vectors, planted.catalog).rank(state, 4)
    assert len(set(planted.cluster[diverse.idx])) > len(set(planted.cluster[plain.idx]))


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_recall_the_exact_neighbours(kind):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 16))
    vectors = (centres[rng.integers(0, 20, 5000)] + 0.3 * rng.normal(size=(5000, 16))).astype(np.float32)
    queries = (centres + 0.5 * rng.normal(size=(20, 16))).astype(np.float32)  # interests near clusters
    _, exact = VectorIndex(vectors, "flat").search(queries, 50)
    scores, approx = VectorIndex(vectors, kind, nprobe=16, ef_search=128).search(queries, 50)
    recall = np.mean([len(set(a) & set(e)) / 50 for a, e in zip(approx, exact, strict=True)])
    assert recall > 0.9
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, vectors[approx]), rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_ivfpq_recalls_the_exact_neighbours_and_rescores_them_exactly():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(50, 32))
    vectors = (centres[rng.integers(0, 50, 20_000)] + 0.4 * rng.normal(size=(20_000, 32))).astype(np.float32)
    queries = (centres[:20] + 0.6 * rng.normal(size=(20, 32))).astype(np.float32)
    _, exact = VectorIndex(vectors, "flat").search(queries, 100)
    index = VectorIndex(vectors, "ivfpq", nprobe=16, refine=4)
    assert index.index.pq.M == 8  # one 1-byte code per 4 of the 32 dimensions
    scores, approx = index.search(queries, 100)
    recall = np.mean([len(set(a) & set(e)) / 100 for a, e in zip(approx, exact, strict=True)])
    assert recall > 0.9
    assert approx.shape == (20, 100)
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, vectors[approx]), rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    # re-scoring more candidates can only help: refine=1 keeps PQ's own order of the k it found
    _, rough = VectorIndex(vectors, "ivfpq", nprobe=16, refine=1).search(queries, 100)
    rough_recall = np.mean([len(set(a) & set(e)) / 100 for a, e in zip(rough, exact, strict=True)])
    assert recall >= rough_recall
    allowed = np.zeros(len(vectors), bool)
    allowed[::3] = True
    _, filtered = index.search(queries, 50, allowed)
    assert allowed[filtered[filtered >= 0]].all()


def test_ivfpq_refuses_a_catalogue_too_small_for_its_codebooks():
    with pytest.raises(ConfigError, match=f"at least {PQ_MIN_ITEMS} items"):
        VectorIndex(np.ones((1000, 8), np.float32), "ivfpq")
    assert pq_subquantizers(64) == 16 and pq_subquantizers(30) == 6 and pq_subquantizers(2) == 1
    with pytest.raises(ConfigError, match="must divide"):
        pq_subquantizers(64, 7)


def test_auto_index_choice():
    assert choose_index_kind("auto", 1000, 5000) == "flat"
    assert choose_index_kind("auto", 10_000, 5000) == "hnsw"
    assert choose_index_kind("auto", 10_000, 5000, hnsw_max_items=9_999) == "ivfpq"
    assert choose_index_kind("auto", 9_999, 5000, hnsw_max_items=9_999) == "hnsw"
    assert choose_index_kind("ivf", 10, 5000) == "ivf"
    assert Ranker(retrieval="auto", flat_max_items=50).fit(np.eye(60, 4, dtype=np.float32)).index_kind_ == "hnsw"
    vectors = np.random.default_rng(0).normal(size=(PQ_MIN_ITEMS + 1, 8)).astype(np.float32)
    big = Ranker(retrieval="auto", flat_max_items=50, hnsw_max_items=PQ_MIN_ITEMS).fit(vectors)
    assert big.index_kind_ == "ivfpq"
    with pytest.raises(ConfigError, match="shape the faiss index"):
        big.reconfigure(ivfpq_refine=8)


def test_rank_scores_matches_the_score_order():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=300)
    scores[7] = -np.inf
    ranker = Ranker(candidates=40).fit(rng.normal(size=(300, 8)))
    out = ranker.rank_scores(scores, 20, exclude_idx=np.array([int(np.argmax(scores))]))
    expected = [i for i in np.argsort(-scores) if i != np.argmax(scores)][:20]
    assert out.idx.tolist() == expected
    assert out.ids.tolist() == [str(i) for i in expected]  # default vocabulary: "0".."n-1"
    all_but_one = ranker.rank_scores(scores, 300)
    assert len(all_but_one) == 299 and 7 not in all_but_one.idx


def test_similarity_vectors_drive_diversity(planted):
    # retrieval vectors put every item in one direction (all equally similar); similarity vectors
    # keep the clusters
    flat = np.ones((100, 2))
    scores = -np.arange(100.0)  # cluster 0 is the most relevant
    by_retrieval = Ranker(diversity="mmr", lam=0.0).fit(flat, planted.catalog)
    by_planted = Ranker(diversity="mmr", lam=0.0).fit(flat, planted.catalog, similarity_vectors=planted.vectors)
    assert len(set(planted.cluster[by_planted.rank_scores(scores, 4).idx])) == 4
    assert by_retrieval.rank_scores(scores, 4).idx.tolist() == [0, 1, 2, 3]  # all ties: relevance decides


def test_config_validation():
    for bad, match in [
        ({"diversity": "fair"}, "diversity: must be one of 'none', 'mmr'"),
        ({"lam": 1.5}, r"lam: must be a number in \[0.0, 1.0\]"),
        ({"candidates": 0}, "candidates: must be an integer >= 1"),
        ({"retrieval": "annoy"}, "retrieval: must be one of"),
        ({"freshness_weight": -1.0}, "freshness_weight"),
        ({"trending_window_days": 0.0}, "trending_window_days"),
        ({"explain_template": "Because {reason}"}, "explain_template"),
        ({"explain_template": "Because ({label})"}, "must contain {items}"),
    ]:
        with pytest.raises(ConfigError, match=match):
            RankConfig(**bad)
    with pytest.raises(ConfigError, match="unknown key 'lambda'.*valid keys"):
        from_dict(RankConfig, {"lambda": 0.5})
    assert from_dict(RankConfig, {"diversity": "dpp", "lam": 1}).lam == 1.0
    assert Ranker(diversity="mmr").config.diversity == "mmr"


def test_errors_name_the_field_and_the_fix(planted):
    with pytest.raises(NotFittedError, match=r"call \.fit"):
        Ranker().rank(planted.state([0], [1.0]), 5)
    ranker = Ranker().fit(planted.vectors, planted.catalog)
    state = planted.state([0], [1.0])
    for n in (0, 101, 2.5, True):
        with pytest.raises(DataError, match="n: must be an integer from 1 to the catalogue size 100"):
            ranker.rank(state, n)
    with pytest.raises(DataError, match="scores: 1 NaN"):
        ranker.rank_scores(np.r_[np.nan, np.ones(99)], 5)
    with pytest.raises(DataError, match=r"scores: expected a numeric array of shape \(100,\)"):
        ranker.rank_scores(np.ones((1, 100)), 5)
    with pytest.raises(DataError, match="dimension 3 does not match"):
        ranker.rank(UserState(np.ones((1, 3)), [1.0], np.zeros(0, np.int32), np.zeros((1, 0))), 5)
    with pytest.raises(DataError, match="item_vectors: expected a numeric 2-d array"):
        Ranker().fit(np.ones(5))
    with pytest.raises(DataError, match="item_vectors: contains NaN"):
        Ranker().fit(np.full((2, 2), np.nan))
    with pytest.raises(DataError, match="catalog has 100 items but item_vectors has 5 rows"):
        Ranker().fit(np.ones((5, 2)), planted.catalog)
    with pytest.raises(DataError, match="similarity_vectors: has 3 rows"):
        Ranker().fit(np.ones((5, 2)), similarity_vectors=np.ones((3, 2)))
    with pytest.raises(DataError, match="now: expected epoch seconds"):
        Ranker(freshness_weight=0.5).fit(planted.vectors, planted.catalog).rank(state, 5, now=float("nan"))
    with pytest.raises(ConfigError, match="Ranker.save"):
        ranker.save("/tmp/never-written")


def test_vocabulary_from_items_argument():
    items = Vocabulary(["x", "y", "z"], "item")
    out = Ranker().fit(np.eye(3), items=items).rank_scores(np.array([0.1, 0.3, 0.2]), 2)
    assert out.ids.tolist() == ["y", "z"]


def test_reconfigure_shares_the_index_and_changes_the_reranking(planted):
    ranker = Ranker(candidates=30).fit(planted.vectors, planted.catalog)
    state = planted.state([0, 1], [0.8, 0.2])
    quota = ranker.reconfigure(diversity="quotas", lam=0.0)
    assert quota.index_ is ranker.index_ and quota.config.candidates == 30
    assert np.bincount(planted.cluster[quota.rank(state, 10).idx], minlength=4).tolist() == [8, 2, 0, 0]
    assert planted.cluster[ranker.rank(state, 10).idx].tolist() == [0] * 10  # the original is unchanged
    with pytest.raises(ConfigError, match="retrieval shape the faiss index"):
        ranker.reconfigure(retrieval="hnsw")
    with pytest.raises(ConfigError, match="unknown key 'lamda'"):
        ranker.reconfigure(lamda=0.5)


def test_logsumexp_merge_ranks_by_the_mixture_of_the_interests_terms():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    state = UserState(rng.normal(size=(3, 8)), [0.5, 0.3, 0.2], np.array([4, 9]), np.full((3, 2), 0.5),
                      offsets=[-1.0, -2.0, -0.5])  # fmt: skip
    out = Ranker(candidates=300, interest_merge="logsumexp").fit(vectors).rank(state, 10)
    terms = state.interests @ vectors.T + state.offsets[:, None]
    from scipy.special import logsumexp

    brute = logsumexp(terms, axis=0)
    brute[state.history_idx] = -np.inf
    assert out.idx.tolist() == np.argsort(-brute)[:10].tolist()
    np.testing.assert_allclose(out.scores, np.sort(brute)[::-1][:10], rtol=1e-5)
    assert out.fields["interest"].tolist() == terms.argmax(axis=0)[out.idx].tolist()
    best_only = Ranker(candidates=300, interest_merge="max").fit(vectors).rank(state, 10)
    best = terms.max(axis=0)
    best[state.history_idx] = -np.inf
    assert best_only.idx.tolist() == np.argsort(-best)[:10].tolist()


def test_a_ranker_without_item_vectors_ranks_scores_only():
    from facetrec.types import ItemCatalog

    catalog = ItemCatalog(Vocabulary([f"i{j}" for j in range(6)], "item"))
    ranker = Ranker().fit(None, catalog)
    out = ranker.rank_scores(np.array([0.1, 0.9, 0.5, 0.7, 0.2, 0.3]), 3, exclude_idx=[3])
    assert out.idx.tolist() == [1, 2, 5]
    with pytest.raises(ConfigError, match="use rank_scores"):
        ranker.rank(UserState(np.ones((1, 2)), [1.0], np.zeros(0, np.int32), np.zeros((1, 0))), 3)
    with pytest.raises(ConfigError, match="compares items by their vectors"):
        ranker.reconfigure(diversity="mmr")
    with pytest.raises(DataError, match="catalog"):
        Ranker().fit(None)
