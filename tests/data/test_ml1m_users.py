"""ML-1M users.dat: gender and age band as user attributes, through every ML-1M reader and a save/load."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from facetrec.data.dataset import Dataset
from facetrec.data.sources import load_source
from facetrec.errors import DataError

USERS = "10::F::1::10::48067\n20::M::56::16::70072\n30::M::25::15::55117\n"


def sasrec_folder(root: Path, users: str = USERS) -> Path:
    (root / "sasrec").mkdir(parents=True)
    (root / "sasrec" / "ml-1m.txt").write_text("1 1\n1 2\n2 2\n2 1\n3 1\n")
    (root / "sasrec" / "user_map.csv").write_text("sasrec_user,user_id\n1,30\n2,10\n3,99\n")
    (root / "users.dat").write_text(users)
    return root


def test_sasrec_users_through_the_map(tmp_path: Path) -> None:
    ds = load_source("ml-1m-sasrec", sasrec_folder(tmp_path))
    attributes = zip(ds.user_attributes["gender"], ds.user_attributes["age"], strict=True)
    by_user = dict(zip(ds.interactions.users.ids, attributes, strict=True))
    assert by_user == {"1": ("M", "25-34"), "2": ("F", "under 18"), "3": ("", "")}  # 99 is not in users.dat
    assert "users.dat: gender and age band of 2 users; 1 users are not in it (attributes '')" in ds.notes
    saved = Dataset.load(ds.save(tmp_path / "out").parent)
    assert {k: v.tolist() for k, v in saved.user_attributes.items()} == {
        k: v.tolist() for k, v in ds.user_attributes.items()
    }


def test_without_the_user_map_attributes_are_left_out(tmp_path: Path) -> None:
    root = sasrec_folder(tmp_path)
    (root / "sasrec" / "user_map.csv").unlink()
    ds = load_source("ml-1m-sasrec", root)
    assert ds.user_attributes == {}
    assert "sasrec/user_map.csv not found: users.dat's gender and age are not used" in ds.notes


def test_bad_users_dat_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="users.dat: unknown age code\\(s\\) 7; expected one of 1, 18"):
        load_source("ml-1m-sasrec", sasrec_folder(tmp_path, USERS + "40::M::7::1::1\n"))


def test_attributes_must_line_up_with_users(tmp_path: Path) -> None:
    ds = load_source("ml-1m-sasrec", sasrec_folder(tmp_path))
    with pytest.raises(DataError, match="user attribute 'gender' must be one str per user \\(3 users"):
        Dataset(ds.name, ds.interactions, ds.catalog, user_attributes={"gender": ["F"]})


@pytest.mark.dataset
def test_real_ml_1m_sasrec_users(shared_dataset: Callable[[str], Path]) -> None:
    ds = load_source("ml-1m-sasrec", shared_dataset("ml-1m"))
    # the ML-1M README's counts: 1,709 women and 4,331 men; every user is described
    assert Counter(ds.user_attributes["gender"]) == {"M": 4331, "F": 1709}
    assert Counter(ds.user_attributes["age"])["25-34"] == 2096 and "" not in ds.user_attributes["age"]
