import numpy as np
import pytest

from facetrec.errors import DataError, UnknownIdError
from facetrec.ids import Vocabulary


def test_ids_are_strings_in_first_seen_order():
    vocab = Vocabulary([3, "a", np.int64(7)], "item")
    assert list(vocab.ids) == ["3", "a", "7"]
    assert vocab.lookup([7, "3", "missing"]).tolist() == [2, 0, -1]
    assert vocab.lookup([]).dtype == np.int32
    assert 3 in vocab and "b" not in vocab


def test_index_of_unknown_id_names_it():
    vocab = Vocabulary(["a", "b"], "user")
    assert vocab.index("b") == 1
    with pytest.raises(UnknownIdError, match="unknown user id 'zz' \\(2 known\\)"):
        vocab.index("zz")


def test_duplicates_are_rejected():
    with pytest.raises(DataError, match="ids must be unique; repeated: \\['x'\\]"):
        Vocabulary(["x", "y", "x"], "item")


def test_id_of_and_range_check():
    vocab = Vocabulary(["a", "b", "c"])
    assert vocab.id_of(1) == "b"
    assert vocab.id_of(np.array([2, 0])).tolist() == ["c", "a"]
    with pytest.raises(DataError, match="out of range 0..2"):
        vocab.id_of(np.array([3]))


def test_extend_appends_only_unseen_ids():
    vocab = Vocabulary(["a", "b"]).extend(["b", "c", "c", "d"])
    assert list(vocab.ids) == ["a", "b", "c", "d"]
    assert vocab == Vocabulary(["a", "b", "c", "d"])
    assert vocab != Vocabulary(["a", "b", "d", "c"])


def test_few_ids_are_looked_up_like_many():
    vocab = Vocabulary([str(i) for i in range(50)] + ["a"], "item")
    asked = [3, np.int64(7), "a", "x", 2.0, "49"]  # 2.0 is the id "2.0", not "2"
    assert vocab.lookup(asked).tolist() == [3, 7, 50, -1, -1, 49]
    many = asked * 3  # above the per-id path's size: the batched index lookup
    assert vocab.lookup(many).tolist() == vocab.lookup(asked).tolist() * 3
    assert vocab.lookup([]).dtype == vocab.lookup(many).dtype == np.int32
