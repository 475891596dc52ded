"""Sequence-file sources: the sequence-lines reader, s3rec, ml-1m-sasrec and ml-1m-sequences.

Hand-written files check exact events, text and errors; the tests marked ``dataset`` import the
real files from FACETREC_DATA_DIR and check the published counts.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from facetrec.cli import app
from facetrec.data.dataset import Dataset
from facetrec.data.sources import load_source
from facetrec.data.sources.fetch import fetch
from facetrec.data.sources.sequences import read_lines
from facetrec.errors import DataError
from facetrec.types import Event

Find = Callable[[str], Path]


def events(dataset: Dataset) -> list[tuple[str, str, int]]:
    """(user, item, timestamp) per interaction, in the dataset's order (user, then time)."""
    i = dataset.interactions
    return [
        (i.users.id_of(u), i.items.id_of(t), int(ts))
        for u, t, ts in zip(i.user_idx, i.item_idx, i.timestamp, strict=True)
    ]


def last_items(dataset: Dataset) -> dict[str, str]:
    """Each user's last event's item."""
    i = dataset.interactions
    last = np.flatnonzero(np.append(np.diff(i.user_idx) != 0, True))
    return dict(zip(i.users.ids[i.user_idx[last]], i.items.ids[i.item_idx[last]], strict=True))


def write_s3rec(root: Path, name: str = "Beauty", *, names: bool = True) -> Path:
    """A tiny S3-Rec folder: 3 users, item 5 only in the attribute file (a catalogue item without events)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.txt").write_text("1 1 2 3\n2 2 4\n\n3 3 1 4 2\n")
    (root / f"{name}_item2attributes.json").write_text(
        '{"1": [1, 2, 3, 4], "2": [2, 3], "3": [5, 6], "4": [7], "5": []}'
    )
    if names:
        (root / f"{name.lower()}_items.csv").write_text(
            "s3rec_item_id,asin,attributes\n"
            "1,B004756YJA,OPI|Makeup|Nails|Nail Polish\n"
            "2,B000000002,Makeup|Nails\n"
            "3,B000000003,Unknown|Skin Care\n"
            '4,B000000004,"Creams, Gels & Lotions"\n'
            "5,B000000005,\n"
        )
    return root


# ---------------------------------------------------------------- the sequence-lines reader


def test_read_lines_one_line_per_user_and_one_event_per_line_are_the_same(tmp_path: Path) -> None:
    (tmp_path / "s3rec.txt").write_text("7 10 11 12\n8 10\n")
    (tmp_path / "sasrec.txt").write_text("7 10\n7 11\n\n8 10\r\n7 12\n")  # a user's lines need not be adjacent
    expected = pd.DataFrame(
        {"user_id": ["7", "7", "7", "8"], "item_id": ["10", "11", "12", "10"], "position": [0, 1, 2, 0]}
    )
    for name in ("s3rec.txt", "sasrec.txt"):
        got = read_lines(tmp_path / name).sort_values(["user_id", "position"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2 3\n2 4 x5\n", r"bad\.txt: line 2: 'x5' is not an integer id"),
        ("1 2 3\n\n2 4 -5\n", r"bad\.txt: line 3: '-5' is not an integer id"),
        ("1 2 3\n2 4 5.0\n", r"bad\.txt: line 2: '5\.0' is not an integer id"),
        ("1 2 3\n2\n3 4\n", r"bad\.txt: line 2: user 2 has no item"),
        ("1 2\n   \n9 \n", r"bad\.txt: line 3: user 9 has no item"),
        ("1 2 café\n", r"bad\.txt: line 1: 'café' is not an integer id"),
        ("\n \n", r"bad\.txt: no events"),
        ("", r"bad\.txt: no events"),
    ],
)
def test_read_lines_malformed_lines_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.txt").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_lines(tmp_path / "bad.txt")


def test_read_lines_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.txt: file not found"):
        read_lines(tmp_path / "nope.txt")


# ---------------------------------------------------------------- s3rec


def test_s3rec_events_are_ordered_by_position(tmp_path: Path) -> None:
    ds = load_source("s3rec", write_s3rec(tmp_path), name="Beauty")
    assert ds.name == "beauty"
    assert events(ds) == [
        ("1", "1", 0),
        ("1", "2", 1),
        ("1", "3", 2),
        ("2", "2", 0),
        ("2", "4", 1),
        ("3", "3", 0),
        ("3", "1", 1),
        ("3", "4", 2),
        ("3", "2", 3),
    ]
    assert (ds.interactions.event == Event.CLICK).all() and np.isnan(ds.interactions.rating).all()
    assert ds.catalog.items.ids.tolist() == ["1", "2", "3", "4", "5"]  # item 5 has attributes but no events
    notes = "\n".join(ds.notes)
    assert "Beauty.txt: no timestamps; each event's time is its position in the user's sequence" in notes
    assert "use leave-one-out" in notes
    assert "1 catalogue items have no interactions; they are kept as cold-start items" in notes
    assert "repeat" not in notes
    assert ds.extras["source"] == "s3rec" and ds.extras["s3rec_name"] == "Beauty"


def test_s3rec_attribute_names_give_categories_brand_and_title(tmp_path: Path) -> None:
    ds = load_source("s3rec", write_s3rec(tmp_path), name="Beauty")
    c = ds.catalog
    assert c.categories.tolist() == [
        ("OPI", "Makeup", "Nails", "Nail Polish"),
        ("Makeup", "Nails"),
        ("Unknown", "Skin Care"),
        ("Creams, Gels & Lotions",),
        (),
    ]
    # "Makeup" comes later in item 1's list, so it is a category, not item 2's brand; "Unknown" is no brand.
    assert c.text["brand"].tolist() == ["OPI", "", "", "Creams, Gels & Lotions", ""]
    assert c.text["title"].tolist() == [
        "OPI: Makeup, Nails, Nail Polish",
        "Makeup, Nails",
        "Unknown, Skin Care",
        "Creams, Gels & Lotions",
        "",
    ]
    assert c.text["asin"].tolist()[:2] == ["B004756YJA", "B000000002"]
    assert any("categories are the attribute names; titles are 'brand: categories' (2 items" in n for n in ds.notes)


def test_s3rec_without_names_uses_attribute_ids(tmp_path: Path) -> None:
    ds = load_source("s3rec", write_s3rec(tmp_path, "Sports_and_Outdoors", names=False), name="Sports_and_Outdoors")
    assert ds.name == "sports"
    assert ds.catalog.categories.tolist() == [
        ("attr 1", "attr 2", "attr 3", "attr 4"),
        ("attr 2", "attr 3"),
        ("attr 5", "attr 6"),
        ("attr 7",),
        (),
    ]
    assert "title" not in ds.catalog.text
    assert any("attribute names are unavailable (no sports_and_outdoors_items.csv)" in n for n in ds.notes)


def test_s3rec_without_attribute_file(tmp_path: Path) -> None:
    (tmp_path / "Toys_and_Games.txt").write_text("1 5 6\n")
    ds = load_source("s3rec", tmp_path, name="Toys_and_Games")
    assert ds.name == "toys" and events(ds) == [("1", "5", 0), ("1", "6", 1)]
    assert any("no Toys_and_Games_item2attributes.json found: items have no attributes" in n for n in ds.notes)


def test_s3rec_repeats_are_kept_and_counted(tmp_path: Path) -> None:
    (tmp_path / "Yelp.txt").write_text("1 7 8 7 7\n2 8 8\n")
    (tmp_path / "Yelp_item2attributes.json").write_text('{"7": [1], "8": []}')
    ds = load_source("s3rec", tmp_path)  # the folder's only dataset
    assert ds.name == "yelp"
    assert events(ds) == [("1", "7", 0), ("1", "8", 1), ("1", "7", 2), ("1", "7", 3), ("2", "8", 0), ("2", "8", 1)]
    assert "Yelp.txt: 3 events repeat an item already in the user's sequence; they are kept" in ds.notes
    assert "duplicate_interactions_dropped" not in ds.extras["ingest"]


def test_s3rec_name_is_needed_when_the_folder_has_several(tmp_path: Path) -> None:
    write_s3rec(tmp_path, "Beauty")
    write_s3rec(tmp_path, "Yelp", names=False)
    (tmp_path / "notes.txt").write_text("not a dataset\n")
    message = r"choose a dataset with the 'name' option \(e\.g\. name='Beauty'\); .*: Beauty, Yelp$"
    with pytest.raises(DataError, match=message):
        load_source("s3rec", tmp_path)
    with pytest.raises(
        DataError, match=r"s3rec: .* lacks Toys\.txt; expected layout: Toys\.txt .*This source has no download"
    ):
        load_source("s3rec", tmp_path, name="Toys")


def test_s3rec_bad_attribute_files(tmp_path: Path) -> None:
    write_s3rec(tmp_path)
    (tmp_path / "Beauty_item2attributes.json").write_text('{"1": [1, 2, 3, 4], "2": [2]')
    with pytest.raises(DataError, match=r"Beauty_item2attributes\.json: not valid JSON"):
        load_source("s3rec", tmp_path, name="Beauty")
    (tmp_path / "Beauty_item2attributes.json").write_text('{"1": 1}')
    with pytest.raises(DataError, match=r"expected an object mapping each item id to a list of attribute ids"):
        load_source("s3rec", tmp_path, name="Beauty")
    (tmp_path / "Beauty_item2attributes.json").write_text('{"1": [1, 2, 3, 4], "2": [2], "3": [5, 6], "4": [7]}')
    with pytest.raises(DataError, match=r"beauty_items\.csv: item 2 has 2 attribute names but the json gives it 1"):
        load_source("s3rec", tmp_path, name="Beauty")
    (tmp_path / "beauty_items.csv").write_text("s3rec_item_id,asin,attributes\n1,A,a\n1,B,b\n")
    with pytest.raises(DataError, match=r"beauty_items\.csv: item 1 has more than one row"):
        load_source("s3rec", tmp_path, name="Beauty")
    (tmp_path / "beauty_items.csv").write_text("item,attributes\n1,a\n")
    with pytest.raises(DataError, match=r"beauty_items\.csv: missing column\(s\) s3rec_item_id, asin"):
        load_source("s3rec", tmp_path, name="Beauty")


def test_s3rec_malformed_sequence_file(tmp_path: Path) -> None:
    write_s3rec(tmp_path)
    (tmp_path / "Beauty.txt").write_text("1 1 2\n2 2 B0001\n")
    with pytest.raises(DataError, match=r"Beauty\.txt: line 2: 'B0001' is not an integer id"):
        load_source("s3rec", tmp_path, name="Beauty")


def test_s3rec_cli_import(tmp_path: Path) -> None:
    root = write_s3rec(tmp_path / "raw")
    out = tmp_path / "beauty"
    args = ["data", "import", "s3rec", "--path", str(root), "--option", "name=Beauty", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "imported beauty: 9 interactions, 3 users, 5 items" in result.output
    assert "each event's time is its position" in result.output
    ds = Dataset.load(out)
    assert events(ds)[:3] == [("1", "1", 0), ("1", "2", 1), ("1", "3", 2)]
    assert ds.catalog.text["title"][0] == "OPI: Makeup, Nails, Nail Polish"


def test_sequence_sources_have_no_download(tmp_path: Path) -> None:
    for name in ("s3rec", "ml-1m-sasrec", "ml-1m-sequences"):
        with pytest.raises(DataError, match=rf"{name}: has no download .*--path"):
            fetch(name, tmp_path)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- MovieLens 1M sequence files


def write_movies(root: Path) -> None:
    movies = "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Jumanji (1995)::Adventure\n3::Café (1998)::Drama\n"
    (root / "movies.dat").write_bytes(movies.encode("latin-1"))


def test_ml_1m_sasrec(tmp_path: Path) -> None:
    root = tmp_path / "ml-1m"
    (root / "sasrec").mkdir(parents=True)
    write_movies(root)
    (root / "sasrec" / "ml-1m.txt").write_text("1 1\n1 2\n1 1\n2 2\n2 1\n")
    (root / "sasrec" / "item_map.csv").write_text("sasrec_item,movie_id\n1,3\n2,1\n")
    ds = load_source("ml-1m-sasrec", tmp_path)  # found in the sub-folder
    assert ds.name == "ml-1m-sasrec"
    assert events(ds) == [("1", "1", 0), ("1", "2", 1), ("1", "1", 2), ("2", "2", 0), ("2", "1", 1)]
    c = ds.catalog
    assert c.items.ids.tolist() == ["1", "2"]  # SASRec's ids; the movie id is kept as text
    assert c.text["movie_id"].tolist() == ["3", "1"]
    assert c.text["title"].tolist() == ["Café (1998)", "Toy Story (1995)"]
    assert c.categories.tolist() == [("Drama",), ("Animation", "Children's", "Comedy")]
    assert c.created_at[1] == pd.Timestamp("1995-01-01", tz="UTC").timestamp()
    assert "ml-1m.txt: 1 events repeat an item already in the user's sequence; they are kept" in ds.notes


def test_ml_1m_sasrec_file_alone(tmp_path: Path) -> None:
    (tmp_path / "ml-1m.txt").write_text("1 1\n1 2\n")
    ds = load_source("ml-1m-sasrec", tmp_path)
    assert events(ds) == [("1", "1", 0), ("1", "2", 1)]
    assert not ds.catalog.text
    assert any("items are SASRec ids without titles or genres" in n for n in ds.notes)
    (tmp_path / "item_map.csv").write_text("sasrec,movie\n1,1\n")
    write_movies(tmp_path)
    with pytest.raises(DataError, match=r"item_map\.csv: missing column\(s\) sasrec_item, movie_id"):
        load_source("ml-1m-sasrec", tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"ml-1m-sasrec: .* lacks sasrec/ml-1m\.txt; expected layout: sasrec/ml-1m"):
        load_source("ml-1m-sasrec", empty)


def test_ml_1m_sequences(tmp_path: Path) -> None:
    write_movies(tmp_path)
    with gzip.open(tmp_path / "sequences.csv.gz", "wt") as out:
        out.write("user_id,item_id,position\n5,2,1\n5,1,0\n6,1,0\n5,3,2\n")
    ds = load_source("ml-1m-sequences", tmp_path)
    assert events(ds) == [("5", "1", 0), ("5", "2", 1), ("5", "3", 2), ("6", "1", 0)]
    assert ds.catalog.text["title"].tolist() == ["Toy Story (1995)", "Jumanji (1995)", "Café (1998)"]
    assert "sequences.csv.gz: ML-1M's ratings without their values or times: events are clicks in order" in ds.notes
    (tmp_path / "movies.dat").unlink()
    with pytest.raises(DataError, match=r"ml-1m-sequences: .* lacks movies\.dat"):
        load_source("ml-1m-sequences", tmp_path)


# ---------------------------------------------------------------- the real files


def line_ends(path: Path) -> dict[str, str]:
    """Each user's last item in a sequence-lines file (the last one written for that user)."""
    ends = {}
    for line in path.read_text().splitlines():
        tokens = line.split()
        if tokens:
            ends[tokens[0]] = tokens[-1]
    return ends


@pytest.mark.dataset
@pytest.mark.parametrize(
    ("folder", "name", "short", "counts", "repeats"),
    [
        ("amazon-2014-s3rec", "Beauty", "beauty", (22_363, 12_101, 198_502), 0),
        ("amazon-2014-s3rec", "Sports_and_Outdoors", "sports", (35_598, 18_357, 296_337), 0),
        ("yelp-s3rec", "Yelp", "yelp", (30_431, 20_033, 316_354), 11_830),
    ],
)
def test_real_s3rec(
    shared_dataset: Find, folder: str, name: str, short: str, counts: tuple[int, int, int], repeats: int
) -> None:
    root = shared_dataset(folder)
    ds = load_source("s3rec", root, name=name)
    i = ds.interactions
    assert ds.name == short
    assert (i.n_users, i.n_items, len(i)) == counts
    assert last_items(ds) == line_ends(root / f"{name}.txt")
    first = np.flatnonzero(np.insert(np.diff(i.user_idx) != 0, 0, True))
    assert (i.timestamp[first] == 0).all() and i.timestamp.max() == np.bincount(i.user_idx).max() - 1
    repeated = f"{name}.txt: {repeats:,} events repeat an item already in the user's sequence; they are kept"
    assert [n for n in ds.notes if "repeat an item" in n] == ([repeated] if repeats else [])
    categories = ds.catalog.categories
    if name == "Beauty":
        opi = ds.catalog.items.index("1")
        assert ds.catalog.text["title"][opi] == "OPI: Makeup, Nails, Nail Polish"
        assert ds.catalog.text["asin"][opi] == "B004756YJA"
        assert categories[ds.catalog.items.index("3")] == ("Unknown", "Skin Care", "Face", "Creams & Moisturizers")
    else:
        assert all(c.startswith("attr ") for cats in categories for c in cats)
    if name == "Yelp":
        assert categories[ds.catalog.items.index("12182")] == ()


@pytest.mark.dataset
def test_real_ml_1m_sasrec(shared_dataset: Find) -> None:
    root = shared_dataset("ml-1m")
    ds = load_source("ml-1m-sasrec", root)
    i = ds.interactions
    assert (i.n_users, i.n_items, len(i)) == (6_040, 3_416, 999_611)
    assert last_items(ds) == line_ends(root / "sasrec" / "ml-1m.txt")
    assert not any("repeat an item" in n for n in ds.notes)
    raiders = ds.catalog.items.index("1")
    assert ds.catalog.text["movie_id"][raiders] == "1198"
    assert ds.catalog.text["title"][raiders] == "Raiders of the Lost Ark (1981)"
    assert all(ds.catalog.text["title"]) and all(len(c) for c in ds.catalog.categories)


@pytest.mark.dataset
def test_real_ml_1m_sequences(shared_dataset: Find) -> None:
    ds = load_source("ml-1m-sequences", shared_dataset("ml-1m"))
    i = ds.interactions
    assert (i.n_users, len(np.unique(i.item_idx)), len(i)) == (6_040, 3_706, 1_000_209)
    assert i.n_items == 3_883  # every movie in movies.dat; 177 have no events and stay as cold-start items
    assert any("without their values or times" in n for n in ds.notes)
