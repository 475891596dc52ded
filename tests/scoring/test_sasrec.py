from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from facetrec.data.split import leave_one_out
from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.evalset import EvalSet
from facetrec.ids import Vocabulary
from facetrec.interests.sequences import ndcg_at_10 as _ndcg_at_10
from facetrec.scoring.popularity import PopularityScorer
from facetrec.scoring.sasrec import SASRec, SASRecScorer, _training_sequences
from facetrec.testing import ScorerConformance, small_synthetic
from facetrec.types import Interactions

TINY: dict[str, Any] = {"epochs": 2, "hidden": 16, "max_len": 20, "batch_size": 64, "progress": False}


class TestSASRecConformance(ScorerConformance):
    component = SASRecScorer
    params: ClassVar[dict[str, Any]] = TINY


class TestTwoHeadSASRecConformance(ScorerConformance):
    component = SASRecScorer
    params: ClassVar[dict[str, Any]] = {**TINY, "heads": 2, "layers": 1, "max_len": 5}


def network(max_len: int = 12) -> SASRec:
    torch.manual_seed(0)
    return SASRec(n_items=30, max_len=max_len, hidden=16, layers=2, heads=2, dropout=0.0).eval()


@torch.no_grad()
def test_padding_never_leaks_into_real_positions():
    model = network()
    seq = torch.tensor([[0, 0, 0, 0, 0, 5, 9, 2, 17, 4, 4, 30]])
    real = seq[0] > 0
    before = model(seq)
    assert torch.equal(before[0, ~real], torch.zeros_like(before[0, ~real]))
    # Give padding some content: its embedding and the positions only padding occupies here.
    model.item.weight[0] = torch.randn(16) * 10
    model.position.weight[:5] = torch.randn(5, 16) * 10
    after = model(seq)
    torch.testing.assert_close(after[0, real], before[0, real], rtol=0, atol=1e-6)
    # The same items without the padding columns give the same states.
    torch.testing.assert_close(model(seq[:, 5:])[0], before[0, real], rtol=0, atol=1e-6)


@torch.no_grad()
def test_a_position_reads_only_itself_and_earlier_items():
    model = network()
    seq = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]])
    base = model(seq)
    for t in range(seq.shape[1] - 1):
        changed = seq.clone()
        changed[0, t + 1 :] = torch.randint(1, 31, (seq.shape[1] - t - 1,))
        changed[0, t + 1] = 7 if seq[0, t + 1] != 7 else 8
        out = model(changed)
        torch.testing.assert_close(out[0, : t + 1], base[0, : t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(out[0, t + 1], base[0, t + 1])


def test_loss_is_the_full_softmax_cross_entropy_at_real_targets():
    model = network()
    batch = {"items": torch.tensor([[0, 3, 4], [5, 6, 7]]), "target": torch.tensor([[0, 4, 9], [6, 7, 1]])}
    states = model(batch["items"])
    # Position (0, 0) has no target; the five others predict items 4, 9, 6, 7, 1 (0-based 3, 8, 5, 6, 0).
    picked = states[torch.tensor([0, 0, 1, 1, 1]), torch.tensor([1, 2, 0, 1, 2])]
    expected = torch.nn.functional.cross_entropy(model.logits(picked), torch.tensor([3, 8, 5, 6, 0]))
    torch.testing.assert_close(model.loss(batch), expected)


def test_bf16_training_on_cpu_gives_finite_losses():
    data = small_synthetic().dataset.interactions
    bf16 = SASRecScorer(**{**TINY, "device": "cpu", "precision": "bf16"}).fit(data)
    fp32 = SASRecScorer(**{**TINY, "device": "cpu"}).fit(data)
    assert np.isfinite(bf16.losses_).all() and not np.array_equal(bf16.losses_, fp32.losses_)
    np.testing.assert_allclose(bf16.losses_, fp32.losses_, rtol=0.05)


def test_ndcg_helper_matches_hand_computed_values():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]])
    seen = torch.tensor([[True, False, False, False], [False, False, False, False]])
    # user 0: item 0 is history, so item 2 ranks second (rank 1); user 1: item 0 ranks last (rank 3)
    ndcg = _ndcg_at_10(scores, seen, torch.tensor([0, 1]), torch.tensor([2, 0]))
    np.testing.assert_allclose(ndcg.numpy(), [1 / np.log2(3), 1 / np.log2(5)], rtol=1e-6)
    # ties rank the target last: a constant score over 12 items earns nothing
    flat = _ndcg_at_10(torch.zeros(1, 12), torch.zeros(1, 12, dtype=torch.bool), torch.tensor([0]), torch.tensor([5]))
    assert flat.item() == 0.0


def ndcg_at_10(scores: np.ndarray, evalset: EvalSet, users: np.ndarray) -> float:
    """Reference NDCG@10 from a full sort (one target per user)."""
    scores = scores.copy()
    rows = np.searchsorted(users, evalset.history.user_idx)
    keep = np.isin(evalset.history.user_idx, users)
    scores[rows[keep], evalset.history.item_idx[keep]] = -np.inf
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    targets = evalset.targets.item_idx[np.searchsorted(evalset.targets.user_idx, users)]
    hit_rank = np.argmax(ranked == targets[:, None], axis=1)
    hit = (ranked == targets[:, None]).any(axis=1)
    return float(np.mean(np.where(hit, 1 / np.log2(hit_rank + 2), 0.0)))


def test_learns_sequences_better_than_popularity():
    split = leave_one_out(small_synthetic().dataset.interactions)
    valid, users = split.valid, np.unique(split.valid.targets.user_idx)
    sasrec = SASRecScorer(hidden=32, max_len=50, epochs=15, lr=1e-2, progress=False)
    sasrec.fit(split.train, valid=valid)
    popularity = PopularityScorer().fit(split.train)
    ours = ndcg_at_10(sasrec.score(valid.history, users), valid, users)
    baseline = ndcg_at_10(popularity.score(valid.history, users), valid, users)
    assert ours > baseline + 0.03, (ours, baseline)  # about 0.15 against 0.08
    # The best epoch's weights are the ones kept, and the training-time measure agrees with ours.
    assert sasrec.valid_scores_[sasrec.best_epoch_] == pytest.approx(ours, abs=1e-6)
    assert sasrec.losses_[-1] < sasrec.losses_[0]


def test_empty_history_falls_back_to_popularity():
    data = small_synthetic().dataset.interactions
    scorer = SASRecScorer(**TINY).fit(data)
    users = Vocabulary(["reader", "newcomer"], "user")
    history = Interactions(np.zeros(3, np.int32), data.item_idx[:3], np.arange(3), users, data.items)
    scores = scorer.score(history, np.array([0, 1]))
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(scores[1], scorer.popularity_)
    assert not np.array_equal(scores[0], scorer.popularity_)


def test_weights_that_do_not_fit_the_config_are_an_error():
    data = small_synthetic().dataset.interactions
    scorer = SASRecScorer(**TINY).fit(data)
    scorer.weights_ = scorer.weights_[:-1].copy()
    with pytest.raises(ConfigError, match="weights and config do not belong together"):
        scorer.score(data, np.array([0]))


def test_needs_at_least_one_pair_of_events():
    users, items = Vocabulary(["a", "b"], "user"), Vocabulary(["x", "y"], "item")
    with pytest.raises(DataError, match="2 or more events"):
        SASRecScorer(**TINY).fit(Interactions([0, 1], [0, 1], [0, 0], users, items))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"hidden": 10, "heads": 3}, "heads"),
        ({"dropout": 1.0}, "dropout"),
        ({"max_len": 0}, "max_len"),
        ({"lr": 0.0}, "lr"),
        ({"epochs": 0}, "epochs"),
        ({"device": "tpu"}, "device"),
        ({"precision": "fp8"}, "precision"),
        ({"device": "cpu", "precision": "fp16"}, "precision: 'fp16' needs a CUDA device"),
    ],
)
def test_bad_config_names_the_field(overrides: dict[str, Any], field: str):
    with pytest.raises(ConfigError, match=field):
        SASRecScorer(**overrides)


def test_training_sequences_use_every_pair_once():
    # user 0 has 7 events (6 pairs), user 1 one event (no pair), user 2 four events (3 pairs)
    items = np.arange(12)
    inputs, targets = _training_sequences(items, np.array([0, 7, 8, 12]), width=3)
    np.testing.assert_array_equal(inputs - 1, [[3, 4, 5], [0, 1, 2], [8, 9, 10]])
    np.testing.assert_array_equal(targets - 1, [[4, 5, 6], [1, 2, 3], [9, 10, 11]])
    inputs, targets = _training_sequences(items, np.array([0, 7, 8, 12]), width=4)
    np.testing.assert_array_equal(inputs, [[3, 4, 5, 6], [0, 0, 1, 2], [0, 9, 10, 11]])
    np.testing.assert_array_equal(targets, [[4, 5, 6, 7], [0, 0, 2, 3], [0, 10, 11, 12]])
