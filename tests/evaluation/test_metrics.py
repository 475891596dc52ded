"""Metrics against hand arithmetic, loop-based textbook references and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import rankdata

from facetrec.errors import DataError
from facetrec.evaluation import metrics as M

ACCURACY = ["hit_rate", "recall", "precision", "f1", "ndcg", "mrr", "average_precision"]
L2 = math.log2


def csr(rows: list[set[int]] | list[dict[int, float]], n_cols: int) -> sp.csr_matrix:
    """A sparse matrix from one set (ones) or dict (weights) per row."""
    dense = np.zeros((len(rows), n_cols))
    for r, row in enumerate(rows):
        for c in row:
            dense[r, c] = row[c] if isinstance(row, dict) else 1.0
    return sp.csr_matrix(dense)


# --------------------------------------------------------------------------- accuracy: hand examples

RANKED = np.array([[3, 1, 0, -1], [2, 5, 4, 0], [1, -1, -1, -1]])
RELEVANT = csr([{0, 1}, {0, 3}, set()], 6)


def test_accuracy_by_hand_at_3():
    # user 0 hits at ranks 2 and 3 of 2 relevant; user 1's only listed target sits at rank 4.
    expect = {
        "hit_rate": [1, 0],
        "recall": [2 / 2, 0],
        "precision": [2 / 3, 0],
        "f1": [2 * (2 / 3) * 1 / (2 / 3 + 1), 0],
        "ndcg": [(1 / L2(3) + 1 / L2(4)) / (1 / L2(2) + 1 / L2(3)), 0],
        "mrr": [1 / 2, 0],
        "average_precision": [(1 / 2 + 2 / 3) / 2, 0],
    }
    for name, values in expect.items():
        got = getattr(M, name)(RANKED, 3, RELEVANT)
        assert got.dtype == np.float64 and got.shape == (3,), name
        np.testing.assert_allclose(got[:2], values, rtol=0, atol=1e-15, err_msg=name)
        assert np.isnan(got[2]), f"{name}: a user with no relevant item must be NaN"


def test_accuracy_by_hand_at_4():
    expect = {
        "recall": 1 / 2,
        "precision": 1 / 4,
        "f1": 2 * (1 / 4) * (1 / 2) / (1 / 4 + 1 / 2),
        "ndcg": (1 / L2(5)) / (1 / L2(2) + 1 / L2(3)),
        "mrr": 1 / 4,
        "average_precision": (1 / 4) / 2,
    }
    for name, value in expect.items():
        assert getattr(M, name)(RANKED, 4, RELEVANT)[1] == pytest.approx(value, abs=1e-15), name


def test_ndcg_ideal_is_capped_at_k_and_a_perfect_list_scores_one():
    ranked = np.array([[0, 1, 7, 8]])
    rel = csr([{0, 1, 2, 3, 4}], 9)
    assert M.ndcg(ranked, 2, rel)[0] == pytest.approx(1.0)
    assert M.average_precision(ranked, 2, rel)[0] == pytest.approx(1.0)
    assert M.ndcg(ranked, 4, rel)[0] == pytest.approx((1 + 1 / L2(3)) / (1 + 1 / L2(3) + 1 / L2(4) + 1 / L2(5)))


def test_padding_is_never_a_hit():
    # -1 must not alias item 0 of its own row nor the last item (5) of the previous row.
    ranked = np.array([[0, -1], [-1, -1]])
    rel = csr([{5}, {0, 5}], 6)
    for name in ACCURACY:
        assert getattr(M, name)(ranked, 2, rel).tolist() == [0.0, 0.0], name


def test_relevant_formats_agree_and_explicit_zeros_are_not_targets():
    explicit_zero = sp.csr_matrix((np.array([1.0, 0.0]), np.array([1, 2]), np.array([0, 2, 2, 2])), shape=(3, 6))
    ranked = np.array([[2, 1], [0, 1], [3, 4]])
    assert M.hit_rate(ranked, 1, explicit_zero)[0] == 0.0
    reference = M.ndcg(RANKED, 4, RELEVANT)
    for variant in (RELEVANT.toarray(), RELEVANT.astype(bool), RELEVANT.tocsc(), sp.csr_array(RELEVANT)):
        np.testing.assert_array_equal(M.ndcg(RANKED, 4, variant), reference)


# --------------------------------------------------------------------------- accuracy: loop reference


def reference(ranked: np.ndarray, rel_sets: list[set[int]], k: int) -> dict[str, list[float]]:
    """The textbook definitions, one user at a time."""
    out: dict[str, list[float]] = {name: [] for name in ACCURACY}
    for row, rel in zip(ranked, rel_sets, strict=True):
        if not rel:
            for values in out.values():
                values.append(math.nan)
            continue
        hits = [item != -1 and item in rel for item in row[:k]]
        h = sum(hits)
        p, r = h / k, h / len(rel)
        dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
        ap = sum(sum(hits[: i + 1]) / (i + 1) for i, hit in enumerate(hits) if hit) / min(len(rel), k)
        out["hit_rate"].append(float(h > 0))
        out["recall"].append(r)
        out["precision"].append(p)
        out["f1"].append(2 * p * r / (p + r) if p + r else 0.0)
        out["ndcg"].append(dcg / idcg)
        out["mrr"].append(next((1 / (i + 1) for i, hit in enumerate(hits) if hit), 0.0))
        out["average_precision"].append(ap)
    return out


def random_case(seed: int, n_users: int = 300, n_items: int = 60, width: int = 20):
    """Lists of length 0..width padded with -1; 0..12 relevant items, half drawn from the list."""
    rng = np.random.default_rng(seed)
    ranked = np.full((n_users, width), -1)
    rel_sets = []
    for u in range(n_users):
        length = rng.integers(0, width + 1)
        ranked[u, :length] = rng.choice(n_items, length, replace=False)
        n_rel = rng.integers(0, 13)
        from_list = rng.choice(ranked[u, :length], min(length, n_rel // 2), replace=False) if length else []
        rel_sets.append({int(i) for i in from_list} | {int(i) for i in rng.choice(n_items, n_rel - len(from_list))})
    rel_sets[0] = set()  # always at least one user without targets
    return ranked, rel_sets, csr(rel_sets, n_items)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("k", [1, 3, 10, 20])
def test_accuracy_matches_loop_reference(seed, k):
    ranked, rel_sets, rel = random_case(seed)
    expected = reference(ranked, rel_sets, k)
    for name in ACCURACY:
        np.testing.assert_allclose(getattr(M, name)(ranked, k, rel), expected[name], rtol=0, atol=1e-12, err_msg=name)


# --------------------------------------------------------------------------- clicks and ratings


def test_auc_by_hand_with_ties():
    assert M.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(3 / 4)
    assert M.auc([1, 2, 2, 3], [0, 1, 0, 1]) == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    assert M.auc([0.5, 0.5], [False, True]) == pytest.approx(1 / 2)


def test_log_loss_rmse_mae_by_hand():
    assert M.log_loss([0.8, 0.3], [1, 0]) == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2)
    assert M.log_loss([1.0, 0.0], [1, 0]) == pytest.approx(-math.log(1 - 1e-15))  # clipped, not log(0)
    assert M.rmse([1, 2, 3], [1, 4, 0]) == pytest.approx(math.sqrt((0 + 4 + 9) / 3))
    assert M.mae([1, 2, 3], [1, 4, 0]) == pytest.approx((0 + 2 + 3) / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_click_and_rating_metrics_match_references(seed):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 500)
    tied_scores = rng.integers(0, 10, 500).astype(float) + labels  # many ties, some signal
    assert M.auc(tied_scores, labels) == pytest.approx(sklearn_metrics.roc_auc_score(labels, tied_scores), abs=1e-12)
    probs = rng.uniform(0.01, 0.99, 500)
    assert M.log_loss(probs, labels) == pytest.approx(sklearn_metrics.log_loss(labels, probs), abs=1e-12)
    pred, truth = rng.normal(size=500), rng.normal(size=500)
    assert M.rmse(pred, truth) == pytest.approx(np.sqrt(np.mean((pred - truth) ** 2)), abs=1e-12)
    assert M.mae(pred, truth) == pytest.approx(np.mean(np.abs(pred - truth)), abs=1e-12)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: M.auc([0.1, np.nan], [0, 1]), "scores"),
        (lambda: M.auc([0.1, 0.2], [0, np.nan]), "labels"),
        (lambda: M.auc([0.1, 0.2], [1, 1]), "labels"),
        (lambda: M.auc([0.1, 0.2], [0, 2]), "labels"),
        (lambda: M.log_loss([np.nan, 0.2], [0, 1]), "probabilities"),
        (lambda: M.log_loss([1.5, 0.2], [0, 1]), "probabilities"),
        (lambda: M.rmse([np.nan, 1.0], [1.0, 1.0]), "pred"),
        (lambda: M.mae([1.0, 1.0], [1.0, np.nan]), "truth"),
        (lambda: M.rmse([1.0, 1.0], [1.0]), "truth"),
    ],
)
def test_click_and_rating_inputs_are_validated(call, name):
    with pytest.raises(DataError, match=name):
        call()


# --------------------------------------------------------------------------- beyond accuracy

VECTORS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 0.0]])


def test_intra_list_diversity_by_hand():
    ranked = np.array([[0, 1, 2], [0, 3, -1], [0, 1, -1], [2, -1, -1]])
    got = M.intra_list_diversity(ranked, 3, VECTORS)
    cos = 1 / math.sqrt(2)
    np.testing.assert_allclose(got[:3], [1 - (0 + cos + cos) / 3, 0.0, 1.0], atol=1e-12)
    assert np.isnan(got[3]), "a list with one item has no pairs"
    assert M.intra_list_diversity(np.array([[0, 1]]), 2, [[1.0, 0.0], [-1.0, 0.0]])[0] == pytest.approx(2.0)
    with pytest.raises(DataError, match="item_vectors"):
        M.intra_list_diversity(np.array([[0, 4]]), 2, VECTORS)


@pytest.mark.parametrize("seed", [0, 1])
def test_intra_list_diversity_matches_pairwise_loop(seed):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(40, 7))
    ranked, _, _ = random_case(seed, n_users=50, n_items=40, width=8)
    expected = []
    for row in ranked[:, :6]:
        items = [i for i in row if i >= 0]
        sims = [
            vectors[a] @ vectors[b] / np.linalg.norm(vectors[a]) / np.linalg.norm(vectors[b])
            for x, a in enumerate(items)
            for b in items[x + 1 :]
        ]
        expected.append(1 - np.mean(sims) if sims else np.nan)
    np.testing.assert_allclose(M.intra_list_diversity(ranked, 6, vectors), expected, rtol=0, atol=1e-12)


def test_category_diversity_by_hand():
    single = np.array([0, 0, 1, 2])
    assert M.category_diversity(np.array([[0, 1, 2]]), 3, single)[0] == pytest.approx(2 / 3)  # 2 of 3 pairs differ
    assert M.category_diversity(np.array([[0, 1, -1]]), 3, single)[0] == pytest.approx(0.0)
    np.testing.assert_allclose(
        M.category_diversity(np.array([[0, 1, 2]]), 3, csr([{0}, {0}, {1}, {2}], 3)), [2 / 3], atol=1e-12
    )
    multi = csr([{0, 1}, {1, 2}, {3}], 4)  # items 0 and 1 share one of two categories: cosine 1/2
    assert M.category_diversity(np.array([[0, 1]]), 2, multi)[0] == pytest.approx(1 - 1 / 2)
    assert M.category_diversity(np.array([[0, 1, 2]]), 3, multi)[0] == pytest.approx(1 - (1 / 2 + 0 + 0) / 3)
    assert np.isnan(M.category_diversity(np.array([[3, -1]]), 2, single)[0])
    with pytest.raises(DataError, match="item_categories"):
        M.category_diversity(np.array([[0, 1]]), 2, np.array([0, -1]))


def test_category_coverage_by_hand():
    cats = np.array([0, 0, 1, 2, -1])
    ranked = np.array([[0, 1, 4], [0, 2, 3], [-1, -1, -1]])
    np.testing.assert_allclose(M.category_coverage(ranked, 3, cats), [1 / 3, 3 / 3, 0 / 3])
    np.testing.assert_allclose(M.category_coverage(ranked, 1, cats), [1 / 3, 1 / 3, 0 / 3])
    # Column 3 is carried by no item, so the catalogue has 3 categories, not 4.
    multi = csr([{0, 1}, {1}, {2}], 4)
    np.testing.assert_allclose(M.category_coverage(np.array([[0, 1]]), 2, multi), [2 / 3])


def test_catalogue_coverage_by_hand():
    ranked = np.array([[0, 1, -1], [1, 2, -1]])
    assert M.catalogue_coverage(ranked, 3, 10) == pytest.approx(3 / 10)
    assert M.catalogue_coverage(ranked, 1, 10) == pytest.approx(2 / 10)
    with pytest.raises(DataError, match="n_items"):
        M.catalogue_coverage(ranked, 1, 0)


def test_novelty_by_hand():
    pop = [4, 2, 1, 0]
    ranked = np.array([[0, 1, 2], [3, -1, -1], [-1, -1, -1]])
    got = M.novelty(ranked, 3, pop, n_users=4)
    expected = [(-L2(4 / 4) - L2(2 / 4) - L2(1 / 4)) / 3, -L2(1 / 4)]  # popularity 0 is clipped to 1
    np.testing.assert_allclose(got[:2], expected, atol=1e-12)
    assert np.isnan(got[2])
    with pytest.raises(DataError, match="item_popularity"):
        M.novelty(ranked, 3, [5, 0, 0, 0], n_users=4)


def test_popularity_percentile_by_hand_and_vs_scipy():
    pop = [10, 0, 5, 5, 20]  # average ranks 4, 1, 2.5, 2.5, 5 -> (rank - 1) / 4
    ranked = np.array([[4, 0, -1], [1, 2, -1], [-1, -1, -1]])
    got = M.popularity_percentile(ranked, 3, pop)
    np.testing.assert_allclose(got[:2], [(4 / 4 + 3 / 4) / 2, (0 / 4 + 1.5 / 4) / 2], atol=1e-12)
    assert np.isnan(got[2])
    rng = np.random.default_rng(0)
    pop = rng.integers(0, 20, 100)
    one_each = np.arange(100)[:, None]
    np.testing.assert_allclose(M.popularity_percentile(one_each, 1, pop), (rankdata(pop) - 1) / 99, atol=1e-12)


# Items 0 and 1 carry categories A and B; item 2 carries both; item 3 none.
CAL_CATS = csr([{0}, {1}, {0, 1}, set()], 2)


def steck(history: dict[int, float], items: list[int], alpha: float = 0.01, weights=None) -> float:
    """KL(p || (1 - alpha) q + alpha p) written out from Steck (RecSys 2018)."""
    split = CAL_CATS.toarray() / np.maximum(CAL_CATS.toarray().sum(1, keepdims=True), 1)
    p = sum(w * split[i] for i, w in history.items())
    p = p / p.sum()
    w = np.ones(len(items)) if weights is None else weights
    q = sum(wi * split[i] for wi, i in zip(w, items, strict=True))
    q = q / q.sum()
    q_tilde = (1 - alpha) * q + alpha * p
    return float(sum(pc * math.log(pc / qc) for pc, qc in zip(p, q_tilde, strict=True) if pc > 0))


def test_calibration_kl_by_hand():
    history = csr([{0: 1.0, 1: 3.0}, {0: 1.0, 1: 1.0}, {0: 1.0}, {}, {3: 1.0, 0: 2.0}], 4)
    ranked = np.array([[0, 2], [0, 1], [1, -1], [0, 1], [1, 3]])
    got = M.calibration_kl(ranked, 2, CAL_CATS, history)
    p, q = np.array([1 / 4, 3 / 4]), np.array([(1 + 1 / 2) / 2, (0 + 1 / 2) / 2])
    q_tilde = 0.99 * q + 0.01 * p
    assert got[0] == pytest.approx(float(np.sum(p * np.log(p / q_tilde))), abs=1e-12)
    assert got[0] == pytest.approx(steck({0: 1.0, 1: 3.0}, [0, 2]), abs=1e-12)
    assert got[1] == pytest.approx(0.0, abs=1e-12), "list distribution equal to the history's"
    assert got[2] == pytest.approx(math.log(1 / 0.01), abs=1e-12), "disjoint: only the alpha smoothing is left"
    assert np.isnan(got[3]), "no history, no target distribution"
    assert got[4] == pytest.approx(steck({0: 2.0}, [1]), abs=1e-12), "uncategorised items carry no mass"
    discounted = M.calibration_kl(ranked[:1], 2, CAL_CATS, history[:1], rank_discount=True)
    assert discounted[0] == pytest.approx(steck({0: 1.0, 1: 3.0}, [0, 2], weights=[1, 1 / L2(3)]), abs=1e-12)
    assert discounted[0] != pytest.approx(got[0])


def test_interest_coverage_by_hand():
    topics = np.array([0, 1, 2, 0, 3])
    interests = csr([{0, 1, 2}, set(), {1, 3}], 4)
    ranked = np.array([[3, 4], [0, 1], [1, 4]])
    got = M.interest_coverage(ranked, 2, topics, interests)
    assert got[0] == pytest.approx(1 / 3), "one of three interests hit"
    assert np.isnan(got[1])
    assert got[2] == pytest.approx(2 / 2)
    multi = csr([{0}, {1}, {2}, {0}, {3}], 4)
    np.testing.assert_array_equal(M.interest_coverage(ranked, 2, multi, interests), got)
    with pytest.raises(DataError, match="item_topics"):
        M.interest_coverage(ranked, 2, csr([{0}] * 5, 3), interests)


# --------------------------------------------------------------------------- validation at the boundary

TOP_K = {
    **{name: (lambda f: lambda r, k: f(r, k, RELEVANT))(getattr(M, name)) for name in ACCURACY},
    "intra_list_diversity": lambda r, k: M.intra_list_diversity(r, k, np.eye(6)),
    "category_diversity": lambda r, k: M.category_diversity(r, k, np.arange(6)),
    "category_coverage": lambda r, k: M.category_coverage(r, k, np.arange(6)),
    "catalogue_coverage": lambda r, k: M.catalogue_coverage(r, k, 6),
    "novelty": lambda r, k: M.novelty(r, k, np.ones(6), 3),
    "popularity_percentile": lambda r, k: M.popularity_percentile(r, k, np.arange(6)),
    "calibration_kl": lambda r, k: M.calibration_kl(r, k, np.arange(6), RELEVANT),
    "interest_coverage": lambda r, k: M.interest_coverage(r, k, np.arange(6), RELEVANT),
}


@pytest.mark.parametrize("name", sorted(TOP_K))
def test_every_top_k_metric_validates_ranked_and_k(name):
    call = TOP_K[name]
    call(RANKED, 4)  # valid input passes
    for bad_k in (0, 5, 2.0, True):
        with pytest.raises(DataError, match="k: must be an integer from 1 to the width of ranked"):
            call(RANKED, bad_k)
    with pytest.raises(DataError, match="more than once"):
        call(np.array([[1, 2, 1, -1], [0, 1, 2, 3], [0, -1, -1, -1]]), 3)
    call(np.array([[1, 2, 3, 1], [0, 1, 2, 3], [0, -1, -1, -1]]), 3)  # a repeat beyond k is not read
    with pytest.raises(DataError, match="outside the item range 0..5"):
        call(np.array([[1, 6, 0, -1], [0, 1, 2, 3], [0, -1, -1, -1]]), 3)
    with pytest.raises(DataError, match="outside the item range"):
        call(np.array([[1, -2, 0, -1], [0, 1, 2, 3], [0, -1, -1, -1]]), 3)
    with pytest.raises(DataError, match="ranked"):
        call(RANKED.astype(float), 3)
    with pytest.raises(DataError, match="ranked"):
        call(RANKED[0], 3)


def test_per_user_inputs_must_match_ranked_rows_and_be_clean():
    with pytest.raises(DataError, match="ranked has 2 rows but relevant has 3"):
        M.ndcg(RANKED[:2], 3, RELEVANT)
    with pytest.raises(DataError, match="ranked has 2 rows but history has 3"):
        M.calibration_kl(RANKED[:2], 3, np.arange(6), RELEVANT)
    with pytest.raises(DataError, match="ranked has 2 rows but user_interests has 3"):
        M.interest_coverage(RANKED[:2], 3, np.arange(6), RELEVANT)
    with pytest.raises(DataError, match="relevant: contains 3 NaN"):
        M.recall(RANKED, 3, sp.csr_matrix(np.array([[np.nan, 1, 0, 0, 0, 0]] * 3)))
    with pytest.raises(DataError, match="history: shape"):
        M.calibration_kl(RANKED, 3, np.arange(6), RELEVANT[:, :5])
    with pytest.raises(DataError, match="history: contains 1 negative"):
        M.calibration_kl(RANKED, 3, np.arange(6), csr([{0: -1.0}, {}, {}], 6))
    with pytest.raises(DataError, match="alpha"):
        M.calibration_kl(RANKED, 3, np.arange(6), RELEVANT, alpha=0)
