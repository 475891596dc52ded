"""The pure parts of benchmarks/recbole_compare.py: atomic files, runner output, timing. No RecBole needed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from facetrec.data.split import leave_one_out
from facetrec.ids import Vocabulary
from facetrec.types import Interactions

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "recbole_compare.py"
_spec = importlib.util.spec_from_file_location("recbole_compare", _PATH)
rc = importlib.util.module_from_spec(_spec)
sys.modules["recbole_compare"] = rc  # dataclasses look their module up by name
_spec.loader.exec_module(rc)


def tiny_split():
    # user a: 5 events, b: 4 (one tie in time, file order decides), c: 2 (too short: training only)
    rows = [
        ("a", "x", 10),
        ("b", "y", 5),
        ("a", "y", 11),
        ("a", "z", 12),
        ("b", "w", 6),
        ("a", "w", 13),
        ("b", "x", 6),
        ("c", "z", 1),
        ("a", "v", 14),
        ("b", "z", 9),
        ("c", "x", 2),
    ]
    users, items = Vocabulary(["a", "b", "c"]), Vocabulary(["v", "w", "x", "y", "z"])
    data = Interactions(
        user_idx=np.array([users.index(u) for u, _, _ in rows]),
        item_idx=np.array([items.index(i) for _, i, _ in rows]),
        timestamp=np.array([t for _, _, t in rows]),
        users=users,
        items=items,
    )
    return leave_one_out(data)


def sequences(part):
    part = part.sorted()
    offsets = part.user_offsets()
    return {u: part.item_idx[offsets[u] : offsets[u + 1]].tolist() for u in range(part.n_users)}


@pytest.mark.parametrize("max_len", [2, 200])
def test_atomic_files_round_trip_the_split_exactly(tmp_path, max_len):
    split = tiny_split()
    paths = rc.write_split(split, tmp_path, "tiny", max_len)
    assert paths["train"].read_text().splitlines()[0] == rc.HEADER
    train = rc.read_atomic(paths["train"])
    seqs = sequences(split.train)
    # Every training event after a user's first is one row; its list is the events before it, cut to max_len.
    expected = [(u, s[max(0, t - max_len) : t], s[t]) for u, s in seqs.items() for t in range(1, len(s))]
    got = [(int(u), lst.tolist(), int(i)) for u, lst, i in zip(train.user, train.item_list, train.item, strict=True)]
    assert got == expected
    # The full training sequence comes back from the first row's list plus the targets.
    for user, seq in seqs.items():
        mine = train.user == user
        if len(seq) > 1:
            assert train.item_list[int(np.flatnonzero(mine)[0])].tolist() + train.item[mine].tolist() == seq
    ts = split.train.sorted()
    first = np.r_[True, ts.user_idx[1:] != ts.user_idx[:-1]]
    assert train.timestamp.tolist() == ts.timestamp[~first].tolist()

    for part, evalset in (("valid", split.valid), ("test", split.test)):
        rows = rc.read_atomic(paths[part])
        history = sequences(evalset.history)
        targets = evalset.targets.sorted()
        assert rows.user.tolist() == targets.user_idx.tolist()
        assert rows.item.tolist() == targets.item_idx.tolist()
        assert rows.timestamp.tolist() == targets.timestamp.tolist()
        assert [r.tolist() for r in rows.item_list] == [history[u][-max_len:] for u in rows.user]
        seen = np.load(paths[f"seen_{part}"])
        pairs = {(u, i) for u, s in history.items() for i in s}
        assert {(int(u), int(i)) for u, i in seen} == pairs


def test_test_rows_read_training_plus_validation_in_time_order(tmp_path):
    split = tiny_split()
    paths = rc.write_split(split, tmp_path, "tiny", 200)
    test = rc.read_atomic(paths["test"])
    items = split.train.items
    names = {
        split.train.users.id_of(int(u)): [items.id_of(int(i)) for i in lst]
        for u, lst in zip(test.user, test.item_list, strict=True)
    }
    # b's events at time 6 keep file order: w before x, so x is b's validation target and z the test one.
    assert names == {"a": ["x", "y", "z", "w"], "b": ["y", "w", "x"]}
    assert [items.id_of(int(i)) for i in test.item] == ["v", "z"]


def test_runner_output_parsing():
    result = {"best_valid_ndcg@10": 0.1, "epochs": [{"epoch": 0, "elapsed_s": 1.5}]}
    noise = "some log line\nRECBOLE_RESULT not-this-one-is-older"
    assert rc.parse_runner_output(f"{noise}\n{rc.RESULT_MARKER}{json.dumps(result)}\n") == result
    with pytest.raises(RuntimeError, match="no RECBOLE_RESULT line"):
        rc.parse_runner_output("Traceback ...\nValueError: boom\n")


def test_fixed_scores_serve_rows_by_user_and_pad_missing_items():
    scorer = rc.FixedScores(np.array([5, 2]), np.array([[0.1, 0.2], [0.3, 0.4]], np.float32), n_items=3)
    out = scorer.score(None, [2, 5])
    np.testing.assert_allclose(out[:, :2], [[0.3, 0.4], [0.1, 0.2]], rtol=1e-6)
    assert np.isneginf(out[:, 2]).all()


def test_time_to_reach():
    assert rc.time_to_reach([0.05, 0.09, 0.11, 0.12], [1.0, 2.0, 3.0, 4.0], 0.10) == 3.0
    assert rc.time_to_reach([0.05, 0.10], [1.0, 2.0], 0.10) == 2.0
    assert rc.time_to_reach([0.05], [1.0], 0.10) is None


def test_recbole_config_shares_the_item_vocabulary_and_uses_ce():
    config = rc.recbole_config("x", Path("/tmp"), seed=3, max_len=50, epochs=2, patience=1)
    assert config["alias_of_item_id"] == ["item_id_list"]
    assert config["benchmark_filename"] == ["train", "valid", "test"]
    assert (config["loss_type"], config["train_neg_sample_args"], config["MAX_ITEM_LIST_LENGTH"]) == ("CE", None, 50)
    assert (config["hidden_size"], config["n_layers"], config["n_heads"], config["seed"]) == (64, 2, 1, 3)
