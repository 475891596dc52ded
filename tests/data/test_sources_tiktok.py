"""The tiktok-mm source: positions as times, the published split as an option, image and audio vectors.

A hand-written folder checks exact events, vocabularies and errors; the tests marked ``dataset``
import the real files from FACETREC_DATA_DIR and check the counts of its SOURCE.md.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facetrec.cli import app
from facetrec.data.dataset import Dataset
from facetrec.data.sources import load_source
from facetrec.data.sources.fetch import fetch
from facetrec.data.split import Split
from facetrec.errors import DataError
from facetrec.evaluation.evalset import EvalSet

Find = Callable[[str], Path]

ROWS = "user_id,item_id,split\n0,1,train\n0,3,valid\n0,4,train\n1,0,train\n1,2,test\n2,1,train\n2,3,train\n"


def write_tiktok(root: Path, rows: str = ROWS) -> Path:
    """3 users, 6 items (item 5 has no click); item 2 has no audio vector (a zero row)."""
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "interactions.csv.gz", "wt") as out:
        out.write(rows)
    image = np.arange(1, 13, dtype=np.float16).reshape(6, 2)
    audio = image[:, ::-1].copy()
    audio[2] = 0
    np.save(root / "image_feat.npy", image)
    np.save(root / "audio_feat.npy", audio)
    return root


def events(dataset: Dataset) -> list[tuple[str, str, int]]:
    i = dataset.interactions
    return [
        (i.users.id_of(u), i.items.id_of(t), int(ts))
        for u, t, ts in zip(i.user_idx, i.item_idx, i.timestamp, strict=True)
    ]


def test_all_rows_positions_as_times_and_vectors(tmp_path: Path) -> None:
    ds = load_source("tiktok-mm", write_tiktok(tmp_path))
    assert ds.name == "tiktok-mm"
    found = events(ds)
    assert sorted((u, t) for u, t, _ in found) == [
        ("0", "1"), ("0", "3"), ("0", "4"), ("1", "0"), ("1", "2"), ("2", "1"), ("2", "3")
    ]  # fmt: skip
    for user, n in (("0", 3), ("1", 2), ("2", 2)):  # each user's times: 0..n-1 in a random order
        assert sorted(ts for u, _, ts in found if u == user) == list(range(n))
    assert found == events(load_source("tiktok-mm", write_tiktok(tmp_path)))  # the same order on every import
    assert ds.catalog.items.ids.tolist() == ["0", "1", "2", "3", "4", "5"]  # every feature row, clicked or not
    image = ds.catalog.vectors["image"]
    assert image.dtype == np.float32 and image.shape == (6, 2)
    np.testing.assert_array_equal(image, np.load(tmp_path / "image_feat.npy"))
    assert not ds.catalog.vectors["audio"][2].any()
    assert ds.extras["split"] == "all"
    assert ds.extras["split_counts"] == {"train": 5, "valid": 1, "test": 1}
    assert ds.extras["item_vectors"] == {"image": "image_feat.npy", "audio": "audio_feat.npy"}
    notes = "\n".join(ds.notes)
    assert "interactions.csv.gz: no timestamps; each user's events get the times 0, 1, 2, ... in a seeded" in notes
    assert "image_feat.npy: 1 catalogue items have no interactions; they are kept as cold-start items" in notes
    assert "audio_feat.npy: item vectors 'audio', 2 dims: 5 of 6 items have one, 1 are missing" in notes


def test_parts_share_vocabularies_and_make_the_published_split(tmp_path: Path) -> None:
    root = write_tiktok(tmp_path)
    train, valid, test = (load_source("tiktok-mm", root, split=s) for s in ("train", "valid", "test"))
    assert (train.name, valid.name, test.name) == ("tiktok-mm-train", "tiktok-mm-valid", "tiktok-mm-test")
    whole = set(events(load_source("tiktok-mm", root)))
    parts = [events(train), events(valid), events(test)]
    assert [len(p) for p in parts] == [5, 1, 1] and set().union(*parts) == whole  # times as in the whole file
    assert [(u, t) for u, t, _ in parts[1] + parts[2]] == [("0", "3"), ("1", "2")]
    for part in (valid, test):
        assert part.interactions.users == train.interactions.users and part.catalog.items == train.catalog.items
    assert test.interactions.n_users == 3 and test.interactions.n_items == 6
    assert "interactions.csv.gz: split=test: kept the 1 test rows of 7" in test.notes
    assert "2 of the 3 users have no test event; they stay in the user vocabulary" in "\n".join(test.notes)
    assert test.extras["split"] == "test" and test.extras["split_counts"] == {"train": 5, "valid": 1, "test": 1}

    fit = train.interactions
    given = Split("given", fit, EvalSet(fit, valid.interactions), EvalSet(fit, test.interactions))
    assert given.sizes() == {
        "train_events": 5,
        "train_users": 3,
        "valid_targets": 1,
        "valid_users": 1,
        "test_targets": 1,
        "test_users": 1,
    }


def test_bad_options_and_files(tmp_path: Path) -> None:
    root = write_tiktok(tmp_path / "ok")
    with pytest.raises(DataError, match=r"tiktok-mm: split 'dev' is not one of train, valid, test, all"):
        load_source("tiktok-mm", root, split="dev")
    with pytest.raises(DataError, match=r"tiktok-mm: unknown option\(s\) min_user_interactions; valid options: split"):
        load_source("tiktok-mm", root, min_user_interactions=5)
    bad = write_tiktok(tmp_path / "bad", "user_id,item_id,split\n0,1,train\n0,2,tst\n")
    with pytest.raises(DataError, match=r"interactions\.csv\.gz: column 'split' has 1 unknown parts \(first at row 2"):
        load_source("tiktok-mm", bad)
    bad = write_tiktok(tmp_path / "bad", "user,item_id,split\n0,1,train\n")
    with pytest.raises(DataError, match=r"interactions\.csv\.gz: missing column\(s\) user_id \(columns found: user,"):
        load_source("tiktok-mm", bad)
    bad = write_tiktok(tmp_path / "bad", "user_id,item_id,split\n0,1,train\n0,6,test\n")  # no feature row 6
    with pytest.raises(DataError, match=r"'item_id' has 1 ids without a feature row \(first at row 2: '6'\); item ids"):
        load_source("tiktok-mm", bad)
    (root / "audio_feat.npy").unlink()
    with pytest.raises(DataError, match=r"tiktok-mm: .* lacks audio_feat\.npy; .*This source has no download"):
        load_source("tiktok-mm", root)


def test_fetch_refuses(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"tiktok-mm: has no download .*--path"):
        fetch("tiktok-mm", tmp_path)
    assert not list(tmp_path.iterdir())


def test_cli_import(tmp_path: Path) -> None:
    root = write_tiktok(tmp_path / "raw")
    args = ["data", "import", "tiktok-mm", "--path", str(root), "--option", "split=train", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "imported tiktok-mm-train: 5 interactions, 3 users, 6 items, image vectors (2-d), audio vectors (2-d)" in (
        result.output
    )
    ds = Dataset.load(tmp_path / "o")
    np.testing.assert_array_equal(ds.catalog.vectors["audio"][2], [0, 0])
    assert ds.extras["split"] == "train"


# ---------------------------------------------------------------- the real files


@pytest.mark.dataset
def test_real_tiktok_mm(shared_dataset: Find) -> None:
    root = shared_dataset("tiktok-mm")
    ds = load_source("tiktok-mm", root)
    i = ds.interactions
    assert (i.n_users, i.n_items, len(i)) == (9_308, 6_710, 68_722)
    assert ds.extras["split_counts"] == {"train": 59_541, "valid": 3_051, "test": 6_130}
    assert ds.catalog.items.ids.tolist() == [str(n) for n in range(6_710)]
    for name in ("image", "audio"):
        vectors = ds.catalog.vectors[name]
        assert vectors.shape == (6_710, 128) and vectors.dtype == np.float32
        assert vectors.any(axis=1).all()  # no item lacks a vector
    np.testing.assert_array_equal(ds.catalog.vectors["image"][0], np.load(root / "image_feat.npy")[0])
    np.testing.assert_array_equal(ds.catalog.vectors["audio"][6_709], np.load(root / "audio_feat.npy")[6_709])


@pytest.mark.dataset
def test_real_tiktok_mm_parts(shared_dataset: Find) -> None:
    root = shared_dataset("tiktok-mm")
    train, valid, test = (load_source("tiktok-mm", root, split=s).interactions for s in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (59_541, 3_051, 6_130)
    assert train.users == test.users and train.items == test.items and train.n_users == 9_308
    assert len(np.unique(train.user_idx)) == 9_298 and len(np.unique(train.item_idx)) == 6_245
    assert len(np.unique(test.user_idx)) == 6_130 and len(np.unique(valid.user_idx)) == 3_051  # one item each
    assert not set(test.user_idx) & set(valid.user_idx)
    assert len(set(test.item_idx) - set(train.item_idx)) == 340
