"""The log-Q corrected sampled softmax: exact where it must equal the full one, and it trains."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facetrec.data.split import leave_one_out
from facetrec.interests.softmax import draw_negatives, log_q_logits, popularity_distribution
from facetrec.scoring.popularity import PopularityScorer
from facetrec.scoring.sasrec import SASRecScorer
from facetrec.testing import small_synthetic

from .test_sasrec import ndcg_at_10


def test_logits_subtract_log_q_and_mask_accidental_hits():
    states = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    items = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    q = torch.tensor([0.5, 0.25, 0.25])
    want, negatives = torch.tensor([0, 2]), torch.tensor([1, 2])
    logits = log_q_logits(states, items, want, negatives, q)
    ln = np.log
    expected = [
        [1 - ln(0.5), 2 - ln(0.25), 0 - ln(0.25)],  # row 0: target item 0, negatives 1 and 2
        [6 - ln(0.25), 0 - ln(0.25), -np.inf],  # row 1: negative 2 is its own target, masked
    ]
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-6)


def test_with_every_item_once_and_uniform_q_it_is_the_full_softmax():
    torch.manual_seed(0)
    states, items = torch.randn(5, 3, 8), torch.randn(20, 8)  # 5 positions x 3 interests
    want = torch.tensor([0, 7, 7, 19, 3])
    q = torch.full((20,), 1 / 20)
    sampled = log_q_logits(states, items, want, torch.arange(20), q)
    full = states @ items.T
    # Same softmax up to a constant shift: the target's duplicate among the negatives is masked.
    for k in range(3):
        torch.testing.assert_close(
            F.cross_entropy(sampled[:, k], torch.zeros(5, dtype=torch.long)), F.cross_entropy(full[:, k], want)
        )


def test_negatives_follow_popularity():
    q = popularity_distribution(np.array([0, 1, 3]))
    np.testing.assert_allclose(q.numpy(), [0, 0.25, 0.75])
    torch.manual_seed(0)
    drawn = torch.bincount(draw_negatives(q, 4000), minlength=3).numpy() / 4000
    assert drawn[0] == 0 and drawn[2] == pytest.approx(0.75, abs=0.03)


def test_sasrec_samples_only_above_the_limit():
    data = small_synthetic().dataset.interactions
    common = {"epochs": 1, "hidden": 16, "max_len": 20, "progress": False}
    full = SASRecScorer(**common).fit(data)
    sampled = SASRecScorer(**common, full_softmax_max_items=0, negatives=64).fit(data)
    assert full._model().q is None  # an inference network needs no training counts
    assert not np.array_equal(full.losses_, sampled.losses_)  # a different objective was trained


def test_sampled_sasrec_learns_sequences_better_than_popularity():
    split = leave_one_out(small_synthetic().dataset.interactions)
    valid, users = split.valid, np.unique(split.valid.targets.user_idx)
    params = {"hidden": 32, "max_len": 50, "epochs": 15, "lr": 1e-2, "progress": False}
    sasrec = SASRecScorer(**params, full_softmax_max_items=0, negatives=64).fit(split.train, valid=valid)
    popularity = PopularityScorer().fit(split.train)
    ours = ndcg_at_10(sasrec.score(valid.history, users), valid, users)
    baseline = ndcg_at_10(popularity.score(valid.history, users), valid, users)
    assert ours > baseline + 0.03, (ours, baseline)
