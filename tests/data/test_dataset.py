import json

import numpy as np
import pytest

from facetrec.data.dataset import Dataset
from facetrec.data.ingest import IngestOptions, InteractionColumns, ItemColumns, load_files
from facetrec.data.inspect import describe
from facetrec.errors import DataError


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "e.csv").write_text(
        "user,item,ts,stars,text\nu1,a,1,5,great\nu1,b,2,,\nu2,a,3,2,meh\nu2,a,3,2,meh\nu3,c,4,4,\n"
    )
    (tmp_path / "i.csv").write_text(
        "id,name,tags,img,price,year\na,Alpha,x|y,a.png,1.5,2001-01-01\nb,Beta,,,,\nc,Gamma,z,,2,\nd,Delta,,,,\n"
    )
    return load_files(
        tmp_path / "e.csv",
        tmp_path / "i.csv",
        columns=InteractionColumns(user="user", item="item", timestamp="ts", rating="stars", review="text"),
        item_columns=ItemColumns(item="id", title="name", tags="tags", image="img", price="price", created_at="year"),
        options=IngestOptions(rating_range=(1, 5)),
    )


def test_save_load_round_trip_is_exact(dataset, tmp_path):
    dataset.save(tmp_path / "ds")
    loaded = Dataset.load(tmp_path / "ds")
    a, b = dataset.interactions, loaded.interactions
    assert a.users == b.users and a.items == b.items
    for name in ("user_idx", "item_idx", "timestamp", "event", "weight"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.rating, b.rating)
    assert list(b.review) == list(a.review) == ["great", None, "meh", None]
    c, d = dataset.catalog, loaded.catalog
    assert d.text["title"].tolist() == c.text["title"].tolist()
    assert d.tags.tolist() == [("x", "y"), (), ("z",), ()]
    assert d.image.tolist() == ["a.png", None, None, None]
    np.testing.assert_array_equal(d.numeric["price"], c.numeric["price"])
    np.testing.assert_array_equal(d.created_at, c.created_at)
    assert loaded.notes == dataset.notes and any("duplicate" in n for n in loaded.notes)


def test_manifest_records_counts_and_detects_tampering(dataset, tmp_path):
    manifest = json.loads(dataset.save(tmp_path / "ds").read_text())
    assert manifest["counts"] == {"interactions": 4, "users": 3, "items": 4}
    assert manifest["catalog"]["text_fields"] == ["title"]
    (tmp_path / "ds" / "users.parquet").write_bytes(b"changed")
    with pytest.raises(DataError, match="do not match manifest.json's fingerprint"):
        Dataset.load(tmp_path / "ds")


def test_loading_a_non_dataset_directory_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="no manifest.json.*facetrec data import"):
        Dataset.load(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match="is not 'facetrec-dataset' version 1"):
        Dataset.load(tmp_path)


def test_describe_hand_checked(dataset):
    stats = describe(dataset)
    assert (stats.interactions, stats.users, stats.items) == (4, 3, 4)
    assert stats.density == pytest.approx(4 / 12)  # distinct pairs u1-a, u1-b, u2-a, u3-c of 3 x 4
    assert stats.cold_items == 1  # d
    assert stats.events == {"rate": 4}
    assert stats.ratings == {"2": 1, "4": 1, "5": 1}
    assert stats.user_lengths.quantiles["max"] == 2 and stats.user_lengths.mean == pytest.approx(4 / 3)
    assert stats.coverage["title"] == 1.0 and stats.coverage["tags"] == 0.5 and stats.coverage["image"] == 0.25
    assert stats.coverage["review (events)"] == 0.5
    # popularity counts sorted: [0, 1, 1, 2]; Gini = 2*(0*1+1*2+1*3+2*4)/(4*4) - 5/4
    assert stats.gini == pytest.approx(2 * 13 / 16 - 5 / 4)
    assert stats.top10_share == pytest.approx(2 / 4)


def test_item_vectors_round_trip_and_join_with_zero_rows_for_missing(tmp_path):
    from facetrec.ids import Vocabulary
    from facetrec.types import Interactions, ItemCatalog

    items = Vocabulary(["a", "b", "c"], "item")
    image = np.array([[1, 2], [0, 0], [3, 4]], np.float16)
    catalog = ItemCatalog(items, vectors={"image": image, "audio": np.ones((3, 5))})
    users = Vocabulary(["u"], "user")
    events = Interactions(
        user_idx=np.array([0, 0]), item_idx=np.array([0, 2]), timestamp=np.array([1, 2]), users=users, items=items
    )
    Dataset("v", events, catalog).save(tmp_path)
    back = Dataset.load(tmp_path).catalog
    assert set(back.vectors) == {"image", "audio"}
    np.testing.assert_array_equal(back.vectors["image"], image.astype(np.float32))
    assert back.vectors["audio"].shape == (3, 5) and back.vectors["image"].dtype == np.float32

    grown = catalog.concat(ItemCatalog(Vocabulary(["d"], "item"), vectors={"image": np.full((1, 2), 7.0)}))
    np.testing.assert_array_equal(grown.vectors["image"][3], [7, 7])
    np.testing.assert_array_equal(grown.vectors["audio"][3], np.zeros(5))  # the new item lacks audio


def test_item_vectors_reject_nan_and_wrong_shapes():
    from facetrec.ids import Vocabulary
    from facetrec.types import ItemCatalog

    items = Vocabulary(["a", "b"], "item")
    with pytest.raises(DataError, match=r"vectors\['image'\]: 1 rows hold NaN"):
        ItemCatalog(items, vectors={"image": np.array([[1.0, np.inf], [0.0, 1.0]])})
    with pytest.raises(DataError, match=r"expected shape \(2, d\)"):
        ItemCatalog(items, vectors={"image": np.ones((3, 4))})
    with pytest.raises(DataError, match="real numbers"):
        ItemCatalog(items, vectors={"image": np.array([["x"], ["y"]])})
