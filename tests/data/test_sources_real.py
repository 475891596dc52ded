"""Public-dataset readers on the real published files (FACETREC_DATA_DIR; skipped when absent)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facetrec.data.sources import load_source
from facetrec.errors import DataError, DataWarning
from facetrec.types import Event

pytestmark = pytest.mark.dataset

Find = Callable[[str], Path]


def test_ml_100k(shared_dataset: Find) -> None:
    ds = load_source("ml-100k", shared_dataset("ml-100k"))
    i = ds.interactions
    assert (len(i), i.n_users, i.n_items) == (100_000, 943, 1_682)
    assert set(np.unique(i.rating).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert (i.event == Event.RATE).all()
    toy = ds.catalog.items.index("1")
    assert ds.catalog.text["title"][toy] == "Toy Story (1995)"
    assert ds.catalog.categories[toy] == ("Animation", "Children's", "Comedy")
    assert ds.catalog.created_at[toy] == pd.Timestamp("1995-01-01", tz="UTC").timestamp()
    assert np.isfinite(ds.catalog.created_at).sum() == 1_681  # item 267 has no release date


def test_ml_latest_small(shared_dataset: Find) -> None:
    ds = load_source("ml-latest-small", shared_dataset("ml-latest-small"))
    i = ds.interactions
    assert (len(i), i.n_users, i.n_items) == (100_836, 610, 9_742)
    assert i.rating.min() == 0.5
    tagged = sum(1 for t in ds.catalog.tags if t)
    assert tagged == 1_572  # movies with at least one user tag in tags.csv
    assert "pixar" in ds.catalog.tags[ds.catalog.items.index("1")]
    assert ds.catalog.categories[ds.catalog.items.index("1")] == (
        "Adventure",
        "Animation",
        "Children",
        "Comedy",
        "Fantasy",
    )


def test_ml_1m_without_ratings_dat(shared_dataset: Find) -> None:
    root = shared_dataset("ml-1m")
    if (root / "ratings.dat").is_file():
        pytest.skip("this ml-1m copy has ratings.dat; the missing-file message is tested with tiny files")
    with pytest.raises(DataError, match=r"ml-1m: .* lacks ratings\.dat; expected layout: ratings\.dat, movies\.dat"):
        load_source("ml-1m", root)


def test_amazon_2018_gift_cards(shared_dataset: Find) -> None:
    ds = load_source("amazon-2018", shared_dataset("amazon-reviews-2018-small"), category="Gift_Cards")
    i = ds.interactions
    assert (len(i), i.n_users, i.n_items) == (2_972, 458, 148)
    assert set(np.unique(i.rating).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert sum(1 for r in i.review if r) == 2_972  # every review has a summary or text
    assert all(ds.catalog.text["title"])  # all 148 items have a title from meta_Gift_Cards
    assert np.isfinite(ds.catalog.numeric["price"]).any()
    assert any("kept metadata of the 148 rows" in n for n in ds.notes)


def test_amazon_2018_magazines(shared_dataset: Find) -> None:
    with pytest.warns(DataWarning, match="6 items in the interactions are missing from the catalogue"):
        ds = load_source("amazon-2018", shared_dataset("amazon-reviews-2018-small"), category="Magazine_Subscriptions")
    assert ds.interactions.n_items == 157
    assert len(ds.interactions) == 2_333  # 42 copies of variant-repeated reviews removed
    assert not any(t.startswith("<") for t in ds.catalog.text["title"])
    notes = "\n".join(ds.notes)
    assert "blanked 3153 titles that are scraped HTML fragments" in notes
    assert "repeated catalogue rows" in notes
    assert sum(1 for d in ds.catalog.text["description"] if d) >= 140


def test_amazon_2018_needs_a_category_when_several(shared_dataset: Find) -> None:
    with pytest.raises(DataError, match=r"choose a category .*Gift_Cards, Magazine_Subscriptions"):
        load_source("amazon-2018", shared_dataset("amazon-reviews-2018-small"))


def test_goodbooks_samples(shared_dataset: Find) -> None:
    ds = load_source("goodbooks-10k", shared_dataset("goodbooks-10k"))
    i = ds.interactions
    assert len(i) == 99
    assert i.n_items == 10_000  # the full books.csv at the root
    notes = "\n".join(ds.notes)
    assert "ratings.csv was read from samples/ratings.csv" in notes
    assert "file order is used as time" in notes
    hunger = ds.catalog.items.index("1")
    assert ds.catalog.text["title"][hunger] == "The Hunger Games (The Hunger Games, #1)"
    assert ds.catalog.text["authors"][hunger] == "Suzanne Collins"
