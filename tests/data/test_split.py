"""Splits: hand-checked assignments and the no-leakage property on every protocol."""

import numpy as np
import pytest

from facetrec.data.split import PROTOCOLS, Split, leave_one_out, make_split, multi_target, temporal, user_ratio
from facetrec.errors import DataError
from facetrec.ids import Vocabulary
from facetrec.types import Interactions


def log(rows):
    """rows: (user, item, time) tuples in file order."""
    users = Vocabulary(dict.fromkeys(r[0] for r in rows), "user")
    items = Vocabulary(dict.fromkeys(r[1] for r in rows), "item")
    return Interactions(
        users.lookup([r[0] for r in rows]), items.lookup([r[1] for r in rows]), [r[2] for r in rows], users, items
    )


def ids(part: Interactions):
    return [(part.users.id_of(u), part.items.id_of(i)) for u, i in zip(part.user_idx, part.item_idx, strict=True)]


def random_log(seed=0, n_users=50, n_items=30):
    rng = np.random.default_rng(seed)
    rows = [
        (f"u{u}", f"i{rng.integers(n_items)}", int(rng.integers(0, 100)))
        for u in range(n_users)
        for _ in range(rng.integers(1, 15))
    ]
    return log(rows)


def test_leave_one_out_by_hand_with_ties_in_file_order():
    data = log([("a", "x", 1), ("a", "y", 3), ("a", "z", 3), ("a", "w", 2), ("b", "x", 1), ("b", "y", 2)])
    split = leave_one_out(data)
    assert ids(split.test.targets) == [("a", "z")]  # z and y share time 3; z comes later in the file
    assert ids(split.valid.targets) == [("a", "y")]
    assert ids(split.train) == [("a", "x"), ("a", "w"), ("b", "x"), ("b", "y")]  # b has < 3 events
    assert ids(split.test.history) == [("a", "x"), ("a", "w"), ("a", "y"), ("b", "x"), ("b", "y")]
    assert split.notes == ("1 users with fewer than 3 events are used for training only",)


def test_user_ratio_by_hand():
    data = log([("a", f"i{k}", k) for k in range(10)])
    split = user_ratio(data, train=0.6, valid=0.2)
    assert [i for _, i in ids(split.train)] == [f"i{k}" for k in range(6)]
    assert [i for _, i in ids(split.valid.targets)] == ["i6", "i7"]
    assert [i for _, i in ids(split.test.targets)] == ["i8", "i9"]


def test_temporal_by_hand_counts_new_users():
    data = log([("a", "x", 1), ("a", "y", 5), ("b", "x", 6), ("c", "z", 9), ("a", "z", 10)])
    split = temporal(data, valid_start=5, test_start=9)
    assert ids(split.train) == [("a", "x")]
    assert ids(split.valid.targets) == [("a", "y"), ("b", "x")]
    assert sorted(ids(split.test.targets)) == [("a", "z"), ("c", "z")]
    assert "1 test users have no earlier events" in split.notes[0]
    with pytest.raises(DataError, match="is after test_start"):
        temporal(data, valid_start=9, test_start=5)
    with pytest.raises(DataError, match="choose cut times inside"):
        temporal(data, valid_start=0, test_start=0)


def test_multi_target_holds_out_whole_users_reproducibly():
    data = random_log()
    split = multi_target(data, test_users=0.2, valid_users=0.2, history_share=0.8, seed=3)
    train_users = set(split.train.user_idx)
    test_users = set(split.test.targets.user_idx)
    assert test_users and not train_users & test_users
    assert not train_users & set(split.valid.targets.user_idx)
    assert set(split.test.history.user_idx) == test_users
    for u in test_users:
        n_hist = (split.test.history.user_idx == u).sum()
        n_target = (split.test.targets.user_idx == u).sum()
        assert n_hist == max(1, int(np.floor((n_hist + n_target) * 0.8)))
    again = multi_target(data, test_users=0.2, valid_users=0.2, seed=3)
    other = multi_target(data, test_users=0.2, valid_users=0.2, seed=4)
    assert np.array_equal(again.test.targets.user_idx, split.test.targets.user_idx)
    assert not np.array_equal(other.test.targets.user_idx, split.test.targets.user_idx)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("seed", [0, 1])
def test_no_split_leaks_the_future_or_loses_events(protocol, seed):
    data = random_log(seed)
    split: Split = make_split(data, protocol, seed=seed)
    for part in (split.valid, split.test):
        h, t = part.history, part.targets
        for u in np.unique(t.user_idx):
            hist_times = h.timestamp[h.user_idx == u]
            if hist_times.size:
                assert hist_times.max() <= t.timestamp[t.user_idx == u].min()
    if protocol != "multi-target":
        # every event is in exactly one of train / valid targets / test targets
        assert len(split.train) + len(split.valid.targets) + len(split.test.targets) == len(data)
        train_max = np.full(data.n_users, -1)
        np.maximum.at(train_max, split.train.user_idx, split.train.timestamp)
        for part in (split.valid.targets, split.test.targets):
            assert (train_max[part.user_idx] <= part.timestamp).all()
    if protocol == "temporal":
        assert split.train.timestamp.max() < split.test.targets.timestamp.min()
    sizes = split.sizes()
    assert sizes["train_events"] == len(split.train) and sizes["test_targets"] == len(split.test.targets)


def test_unknown_protocol_and_bad_shares():
    data = random_log()
    with pytest.raises(DataError, match="unknown split protocol 'kfold'; choose one of loo"):
        make_split(data, "kfold")
    with pytest.raises(DataError, match="user_ratio"):
        user_ratio(data, train=0.9, valid=0.2)
    with pytest.raises(DataError, match="multi_target"):
        multi_target(data, test_users=0.0)
