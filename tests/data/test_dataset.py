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
