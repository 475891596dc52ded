"""Inverse-propensity-weighted training: the weights, and each model they reach (ALS, SASRec+, facet)."""

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facetrec.errors import ConfigError, DataError
from facetrec.interests.facet_model import routed_loss
from facetrec.scoring.base import history_matrix
from facetrec.scoring.facet import FacetScorer
from facetrec.scoring.matrix_factorization import ALSScorer, _implicit
from facetrec.scoring.propensity import MAX_RATIO, ipw_weights
from facetrec.scoring.sasrec import SASRec, SASRecScorer
from facetrec.testing import small_synthetic
from facetrec.types import Interactions

SEQ: dict[str, Any] = {"epochs": 3, "hidden": 16, "max_len": 20, "batch_size": 64, "progress": False}


def test_weights_are_finite_normalised_and_inverse_to_popularity():
    counts = np.array([1000.0, 100.0, 10.0, 1.0, 0.0])
    np.testing.assert_array_equal(ipw_weights(counts, 0.0), np.ones(5, np.float32))
    for power in (0.25, 0.5, 1.0):
        w = ipw_weights(counts, power).astype(np.float64)
        assert np.isfinite(w).all() and w.dtype == np.float64
        assert counts @ w / counts.sum() == pytest.approx(1.0, rel=1e-6)  # mean 1 over the events
        assert (np.diff(w[:4]) >= 0).all() and w[1] > w[0]  # rarer: heavier (or capped)
        assert w.max() / w.min() <= MAX_RATIO * (1 + 1e-6)
    w = ipw_weights(counts, 0.5)
    assert w[1] / w[0] == pytest.approx(np.sqrt(10), rel=1e-5)  # below the cap: exactly popularity ** -power
    with pytest.raises(DataError, match="counts"):
        ipw_weights(np.array([1.0, -1.0]), 0.5)


@pytest.mark.parametrize("make", [ALSScorer, SASRecScorer, FacetScorer], ids=["als", "sasrec", "facet"])
def test_the_knob_is_checked(make):
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="ipw_power: must be a number in \\[0, 1\\]"):
            make(ipw_power=bad)


def tail_share(scorer, data: Interactions) -> float:
    """Share of each user's top 10 (history excluded) outside the 10 most popular items."""
    counts = np.bincount(data.item_idx, minlength=data.n_items)
    head = np.argsort(-counts, kind="stable")[:10]
    users = np.arange(data.n_users)
    scores = scorer.score(data, users)
    seen = history_matrix(data, users).toarray() > 0
    scores[seen] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return float(np.mean(~np.isin(top, head)))


@pytest.fixture(scope="module")
def events() -> Interactions:
    return small_synthetic(0).dataset.interactions


def test_als_power_zero_is_implicit_unchanged(events):
    params = {"factors": 8, "iterations": 3, "regularization": 0.1}
    ours = ALSScorer(ipw_power=0.0, **params).fit(events)
    model = _implicit().als.AlternatingLeastSquares(
        factors=8, regularization=0.1, alpha=2.0, iterations=3, num_threads=0, random_state=0
    )
    model.fit(history_matrix(events, np.arange(events.n_users)), show_progress=False)
    np.testing.assert_array_equal(ours.item_factors_, model.item_factors)
    assert "item_weights_" not in ours.fitted_attributes


def test_als_weights_reach_the_confidences_and_lift_the_tail(events, tmp_path):
    plain = ALSScorer(factors=8, iterations=5, regularization=0.1)
    debiased = ALSScorer(factors=8, iterations=5, regularization=0.1, ipw_power=1.0).fit(events)
    w = ipw_weights(events.users_per_item(), 1.0)
    np.testing.assert_array_equal(debiased.item_weights_, w)
    # a user folded in by hand with confidence alpha * w_i on their items (implicit: alpha x value)
    y = debiased.item_factors_.astype(np.float64)
    seen = np.unique(events.item_idx[events.user_idx == 3])
    c = 2.0 * w[seen]
    a = y.T @ y + 0.1 * np.eye(8) + (y[seen].T * (c - 1)) @ y[seen]
    expected = np.linalg.solve(a, (c[:, None] * y[seen]).sum(axis=0))
    got = debiased.user_factors(events, np.array([3]))[0]
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    assert tail_share(debiased, events) > tail_share(plain.fit(events), events)
    loaded = ALSScorer.load(debiased.save(tmp_path / "als").parent)  # the weights travel with the model
    np.testing.assert_array_equal(loaded.score(events, np.arange(5)), debiased.score(events, np.arange(5)))


def test_sasrec_weighted_loss_is_the_weighted_mean_of_the_cross_entropies():
    torch.manual_seed(0)
    weights = np.linspace(0.5, 2.0, 30).astype(np.float32)
    plain = SASRec(n_items=30, max_len=8, hidden=16, layers=1, heads=1, dropout=0.0)
    weighted = SASRec(n_items=30, max_len=8, hidden=16, layers=1, heads=1, dropout=0.0, target_weights=weights)
    weighted.load_state_dict(plain.state_dict())
    batch = {"items": torch.tensor([[0, 3, 5, 7], [2, 4, 6, 8]]), "target": torch.tensor([[0, 5, 7, 9], [4, 6, 8, 1]])}
    real = batch["target"] > 0
    logits = plain.logits(plain(batch["items"])[real])
    want = batch["target"][real] - 1
    assert torch.equal(plain.loss(batch), F.cross_entropy(logits, want))  # no weights: the old loss
    by_hand = (F.cross_entropy(logits, want, reduction="none") * torch.from_numpy(weights)[want]).mean()
    torch.testing.assert_close(weighted.loss(batch), by_hand)


def test_routed_loss_weighs_each_target():
    torch.manual_seed(0)
    logits, log_weights = torch.randn(5, 3, 7), torch.log_softmax(torch.randn(5, 3), -1)
    target, weights = torch.tensor([0, 2, 4, 6, 1]), torch.tensor([0.0, 1.0, 2.0, 0.5, 1.5])
    for routing in ("soft", "hard"):
        ones = routed_loss(logits, log_weights, target, routing, torch.ones(5))
        torch.testing.assert_close(ones, routed_loss(logits, log_weights, target, routing))
        each = torch.stack([routed_loss(logits[i : i + 1], log_weights[i : i + 1], target[i : i + 1], routing)
                            for i in range(5)])  # fmt: skip
        torch.testing.assert_close(routed_loss(logits, log_weights, target, routing, weights), (each * weights).mean())


@pytest.mark.parametrize(
    ("make", "params"),
    [(SASRecScorer, SEQ), (FacetScorer, {**SEQ, "encoder": "none", "interests": 2})],
    ids=["sasrec", "facet"],
)
def test_sequence_models_shift_towards_the_tail(make, params, events):
    plain = make(**params).fit(events)
    again = make(ipw_power=0.0, **params).fit(events)
    np.testing.assert_array_equal(plain.weights_, again.weights_)  # 0 is off, and training is repeatable
    debiased = make(ipw_power=1.0, **params).fit(events)
    assert tail_share(debiased, events) > tail_share(plain, events)
