"""Precomputed item vectors from .npy and .parquet files: alignment, notes and every refusal."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from facetrec.data.dataset import Dataset
from facetrec.data.ingest import build_dataset
from facetrec.data.vectors import attach_item_vectors, read_item_vectors
from facetrec.errors import ConfigError, DataError
from facetrec.ids import Vocabulary

NUMBERED = Vocabulary(["2", "0", "1"], "item")  # ids are row numbers, in another order than the rows
NAMED = Vocabulary(["b", "a", "c"], "item")


def dataset(item_ids: list[str]) -> Dataset:
    events = pd.DataFrame({"user_id": ["u"] * len(item_ids), "item_id": item_ids, "timestamp": range(len(item_ids))})
    return build_dataset(events, name="toy")


def write_parquet(path: Path, ids: list[object], vectors: list[object], type_: pa.DataType | None = None) -> Path:
    pq.write_table(pa.table({"item_id": ids, "vec": pa.array(vectors, type_ or pa.list_(pa.float32()))}), path)
    return path


# ---------------------------------------------------------------- .npy


def test_npy_rows_are_item_numbers_when_every_id_is_a_number(tmp_path: Path) -> None:
    path = tmp_path / "image.npy"
    array = np.arange(12, dtype=np.float16).reshape(4, 3)
    array[0] = 0  # item '0' has no vector; row 3 names no item of the dataset
    np.save(path, array)
    matrix, notes = read_item_vectors(path, NUMBERED, "image")
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, [[6, 7, 8], [0, 0, 0], [3, 4, 5]])  # items '2', '0', '1'
    assert notes == (
        "image.npy: 1 rows are for item ids the dataset lacks; they are ignored",
        "image.npy: item vectors 'image', 3 dims: 2 of 3 items have one, 1 are missing (all-zero rows)",
    )


def test_npy_rows_follow_the_catalogue_order_when_ids_are_not_numbers(tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    np.save(path, np.array([[1, 2], [3, 4], [5, 6]], dtype=np.int64))
    matrix, notes = read_item_vectors(path, NAMED, "v")
    np.testing.assert_array_equal(matrix, [[1, 2], [3, 4], [5, 6]])
    assert notes == ("v.npy: item vectors 'v', 2 dims: 3 of 3 items have one",)
    # '007' is not a row number, so one such id puts the whole catalogue on the order rule
    matrix, _ = read_item_vectors(path, Vocabulary(["2", "007", "0"]), "v")
    np.testing.assert_array_equal(matrix[:, 0], [1, 3, 5])


def test_npy_row_count_errors_say_which_rule_applied(tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    np.save(path, np.ones((2, 4), np.float32))
    by_id = (
        r"v\.npy: 1 items have no row: item ids are numbers, so row i holds item 'i', and item '2' needs row 2 but "
        r"the file has 2 rows\. If row 0 is not item '0', write a \.parquet file with an item_id column instead"
    )
    with pytest.raises(DataError, match=by_id):
        read_item_vectors(path, NUMBERED, "v")
    by_order = r"v\.npy: 2 rows for 3 items; item ids are not all numbers, so row i must hold the dataset's i-th item"
    with pytest.raises(DataError, match=by_order):
        read_item_vectors(path, NAMED, "v")


def test_pickled_npy_files_are_refused(tmp_path: Path) -> None:
    raw = tmp_path / "raw.npy"
    raw.write_bytes(pickle.dumps(np.ones((3, 2))))
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([[1.0, "a"]] * 3, dtype=object), allow_pickle=True)
    for path in (raw, objects):
        with pytest.raises(DataError, match=rf"{path.name}: holds pickled Python objects, which are never loaded"):
            read_item_vectors(path, NUMBERED, "v")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([[1.0], [np.nan], [2.0]]), r"1 items have NaN or infinite values .*, first item '1'"),
        (np.array([[1.0], [2.0], [-np.inf]]), r"1 items have NaN or infinite values .*, first item '2'"),
        (np.array([[1e300], [1.0], [1.0]]), r"1 items have .*beyond float32's range\), first item '0'"),
        (np.array([["a"], ["b"], ["c"]]), r"expected real numbers \(float or int\), got dtype <U1"),
        (np.array([[True], [False], [True]]), r"expected real numbers \(float or int\), got dtype bool"),
        (np.ones(3), r"expected a 2-d array \[items, dims\], got shape \(3,\)"),
        (np.ones((3, 2, 2)), r"expected a 2-d array \[items, dims\], got shape \(3, 2, 2\)"),
        (np.ones((3, 0)), r"the vectors have 0 dimensions"),
    ],
)
def test_bad_npy_contents(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataError, match=r"bad\.npy: " + message):
        read_item_vectors(path, NUMBERED, "v")


def test_unreadable_files(tmp_path: Path) -> None:
    text = tmp_path / "text.npy"
    text.write_text("1 2 3\n")
    cut = tmp_path / "cut.npy"
    np.save(cut, np.ones((3, 8)))
    cut.write_bytes(cut.read_bytes()[:-20])
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    for path, message in [
        (text, r"text\.npy: not a \.npy file \(it does not start with numpy's header\)"),
        (cut, r"cut\.npy: not a readable \.npy file \("),
        (broken, r"broken\.parquet: not a readable Parquet file \("),
        (tmp_path / "absent.npy", r"absent\.npy: file not found"),
    ]:
        with pytest.raises(DataError, match=message):
            read_item_vectors(path, NUMBERED, "v")
    other = tmp_path / "v.csv"
    other.write_text("item_id,x\n0,1\n")
    with pytest.raises(DataError, match=r"v\.csv: item vectors must be a \.npy file .* or a \.parquet file .*'\.csv'"):
        read_item_vectors(other, NUMBERED, "v")


# ---------------------------------------------------------------- .parquet


def test_parquet_rows_match_by_id_and_count_what_is_ignored_or_missing(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "v.parquet",
        ["a", "ghost", "c", "d"],
        [[1, 2], [3, 4], None, [0, 0]],
    )
    items = Vocabulary(["a", "b", "c", "d", "e"], "item")
    matrix, notes = read_item_vectors(path, items, "v")
    np.testing.assert_array_equal(matrix, [[1, 2], [0, 0], [0, 0], [0, 0], [0, 0]])
    assert notes == (
        "v.parquet: 1 rows are for items the dataset lacks (e.g. 'ghost'); they are ignored",
        "v.parquet: 1 items have a null vector; they count as missing",
        "v.parquet: 2 items have no row; their vectors are zero (missing)",
        "v.parquet: item vectors 'v', 2 dims: 1 of 5 items have one, 4 are missing (all-zero rows)",
    )  # 'c' null, 'd' all zero, 'b' and 'e' absent


def test_parquet_numeric_ids_fixed_size_lists_and_several_list_columns(tmp_path: Path) -> None:
    path = tmp_path / "v.parquet"
    image = pa.array([[1, 2], [3, 4]], pa.list_(pa.int16(), 2))
    audio = pa.array([[5.0], [6.0]], pa.large_list(pa.float64()))
    pq.write_table(pa.table({"item_id": [0, 2], "image": image, "audio": audio, "note": ["x", "y"]}), path)
    matrix, _ = read_item_vectors(path, NUMBERED, "image")
    np.testing.assert_array_equal(matrix, [[3, 4], [1, 2], [0, 0]])  # items '2', '0', '1'
    matrix, _ = read_item_vectors(path, NUMBERED, "audio")
    np.testing.assert_array_equal(matrix, [[6], [5], [0]])
    several = r"expected one list column of numbers beside item_id, found several \(image, audio\) and none is called"
    with pytest.raises(DataError, match=several):
        read_item_vectors(path, NUMBERED, "other")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"id": ["a"], "vec": [[1.0]]}, r"no 'item_id' column \(columns found: id, vec\)"),
        ({"item_id": ["a"], "vec": [1.0]}, r"expected one list column of numbers beside item_id, found none"),
        ({"item_id": ["a"], "vec": [["x"]]}, r"column 'vec' holds lists of string, not numbers"),
        ({"item_id": ["a", "b", "c"], "vec": [[1.0, 2.0], None, [3.0]]}, r"item 'c' has 1 numbers but item 'a' has 2"),
        ({"item_id": ["a", "b", "a"], "vec": [[1.0], [2.0], [3.0]]}, r"item 'a' has more than one row"),
        ({"item_id": ["a", None], "vec": [[1.0], [2.0]]}, r"column 'item_id' has 1 empty or missing ids"),
        ({"item_id": ["x", "y"], "vec": [[1.0], [2.0]]}, r"none of its 2 item ids is in the dataset \(file: 'x'"),
        ({"item_id": ["a", "b"], "vec": pa.array([[], None], pa.list_(pa.float32()))}, r"'vec' holds no numbers"),
        ({"item_id": ["a", "b"], "vec": [[1.0], [None]]}, r"1 items have NaN or infinite values .*first item 'b'"),
    ],
)
def test_bad_parquet_files(tmp_path: Path, table: dict, message: str) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(table), path)
    with pytest.raises(DataError, match=r"bad\.parquet: .*" + message):
        read_item_vectors(path, NAMED, "v")


# ---------------------------------------------------------------- attaching to a dataset


def test_attach_item_vectors_round_trips_through_save_and_load(tmp_path: Path) -> None:
    data = dataset(["a", "b", "c"])
    np.save(tmp_path / "image.npy", np.array([[1, 0], [0, 0], [0, 2]], np.float32))
    write_parquet(tmp_path / "audio.parquet", ["c", "a"], [[7, 8, 9], [1, 2, 3]])
    out = attach_item_vectors(data, {"image": tmp_path / "image.npy", "audio": tmp_path / "audio.parquet"})
    assert out.extras["item_vectors"] == {"image": "image.npy", "audio": "audio.parquet"}
    assert out.notes[-2:] == (
        "audio.parquet: 1 items have no row; their vectors are zero (missing)",
        "audio.parquet: item vectors 'audio', 3 dims: 2 of 3 items have one, 1 are missing (all-zero rows)",
    )
    out.save(tmp_path / "ds")
    loaded = Dataset.load(tmp_path / "ds")
    np.testing.assert_array_equal(loaded.catalog.vectors["image"], [[1, 0], [0, 0], [0, 2]])
    np.testing.assert_array_equal(loaded.catalog.vectors["audio"], [[1, 2, 3], [0, 0, 0], [7, 8, 9]])
    assert loaded.notes == out.notes


def test_attach_item_vectors_refuses_bad_or_taken_names(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.ones((3, 2)))
    data = attach_item_vectors(dataset(["a", "b", "c"]), {"image": tmp_path / "v.npy"})
    with pytest.raises(ConfigError, match=r"item vectors 'image': dataset 'toy' already has them"):
        attach_item_vectors(data, {"image": tmp_path / "v.npy"})
    with pytest.raises(ConfigError, match=r"item vectors name 'my image': use letters, digits"):
        attach_item_vectors(data, {"my image": tmp_path / "v.npy"})
