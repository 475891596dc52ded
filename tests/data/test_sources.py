"""Public-dataset readers on tiny hand-written files in each publisher's format, the registry, and fetch."""

from __future__ import annotations

import gzip
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facetrec.data.sources import SOURCES, RemoteFile, find_root, get_source, load_source
from facetrec.data.sources.amazon import load_amazon_2018, load_amazon_2023
from facetrec.data.sources.fetch import fetch
from facetrec.data.sources.goodbooks import load_goodbooks_10k
from facetrec.data.sources.mind import load_mind
from facetrec.data.sources.movielens import load_ml_1m, load_ml_100k, load_ml_csv
from facetrec.errors import DataError, DataWarning
from facetrec.types import Event


def epoch(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp())


def titles(dataset) -> list[str]:
    return dataset.catalog.text["title"].tolist()


def rows(dataset) -> list[tuple]:
    """(user, item, timestamp, event name, rating) per interaction, in the dataset's order."""
    i = dataset.interactions
    names = Event.names()
    return [
        (i.users.id_of(u), i.items.id_of(t), int(ts), names[e], None if np.isnan(r) else float(r))
        for u, t, ts, e, r in zip(i.user_idx, i.item_idx, i.timestamp, i.event, i.rating, strict=True)
    ]


def write_gz_json(path: Path, records: list[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(r) + "\n" for r in records)


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


# ---------------------------------------------------------------- MovieLens


def _genre_flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


def write_ml_100k(root: Path, genre_file: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "u.data").write_text("1\t10\t4\t881250949\n2\t30\t1\t881250952\n1\t20\t3\t881250950\n2\t10\t5\t881250951\n")
    items = [
        f"10|Toy Story (1995)|01-Jan-1995||http://imdb/1|{_genre_flags(3, 4, 5)}",
        f"20|Café Noir (1996)|15-Mar-1996||http://imdb/2|{_genre_flags(1)}",
        f"30|unknown||||{_genre_flags(0)}",
    ]
    (root / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    if genre_file:
        genres = [
            "unknown",
            "Action",
            "Adventure",
            "Animation",
            "Children's",
            "Comedy",
            "Crime",
            "Documentary",
            "Drama",
            "Fantasy",
            "Film-Noir",
            "Horror",
            "Musical",
            "Mystery",
            "Romance",
            "Sci-Fi",
            "Thriller",
            "War",
            "Western",
        ]
        (root / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(genres)) + "\n")
    return root


@pytest.mark.parametrize("genre_file", [True, False])
def test_ml_100k(tmp_path: Path, genre_file: bool) -> None:
    ds = load_ml_100k(write_ml_100k(tmp_path / "ml-100k", genre_file))
    assert ds.name == "ml-100k"
    assert rows(ds) == [
        ("1", "10", 881250949, "rate", 4.0),
        ("1", "20", 881250950, "rate", 3.0),
        ("2", "10", 881250951, "rate", 5.0),
        ("2", "30", 881250952, "rate", 1.0),
    ]
    assert ds.catalog.items.ids.tolist() == ["10", "20", "30"]
    assert titles(ds) == ["Toy Story (1995)", "Café Noir (1996)", "unknown"]
    assert ds.catalog.categories.tolist() == [("Animation", "Children's", "Comedy"), ("Action",), ()]
    created = ds.catalog.created_at
    assert created[:2].tolist() == [epoch("1995-01-01"), epoch("1996-03-15")]
    assert np.isnan(created[2])


def test_ml_100k_missing_file_names_it(tmp_path: Path) -> None:
    root = write_ml_100k(tmp_path / "ml-100k")
    (root / "u.item").unlink()
    with pytest.raises(DataError, match=r"lacks u\.item; expected layout: u\.data, u\.item"):
        load_ml_100k(root)


def write_ml_1m(root: Path, ratings: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if ratings:
        (root / "ratings.dat").write_text("1::1193::5::978300760\n1::2::3::978302109\n6040::1193::4::956703932\n")
    movies = "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n2::Cité des enfants (1995)::Adventure|Sci-Fi\n"
    (root / "movies.dat").write_bytes(movies.encode("latin-1"))
    (root / "users.dat").write_text("1::F::1::10::48067\n")
    return root


def test_ml_1m(tmp_path: Path) -> None:
    ds = load_ml_1m(write_ml_1m(tmp_path / "ml-1m"))
    assert rows(ds) == [
        ("1", "1193", 978300760, "rate", 5.0),
        ("1", "2", 978302109, "rate", 3.0),
        ("6040", "1193", 956703932, "rate", 4.0),
    ]
    assert titles(ds) == ["One Flew Over the Cuckoo's Nest (1975)", "Cité des enfants (1995)"]
    assert ds.catalog.categories.tolist() == [("Drama",), ("Adventure", "Sci-Fi")]
    assert ds.catalog.created_at.tolist() == [epoch("1975-01-01"), epoch("1995-01-01")]


def test_ml_1m_without_ratings_names_ratings_dat(tmp_path: Path) -> None:
    root = write_ml_1m(tmp_path / "ml-1m", ratings=False)
    with pytest.raises(DataError, match=r"ml-1m: .* lacks ratings\.dat; expected layout: ratings\.dat, movies\.dat"):
        load_ml_1m(root)
    with pytest.raises(DataError, match=r"lacks ratings\.dat"):
        load_source("ml-1m", root)


def write_ml_csv(root: Path, tags: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,11,0.5,964982224\r\n2,11,5.0,1445714994\r\n"
    )
    (root / "movies.csv").write_text(
        "movieId,title,genres\r\n1,Toy Story (1995),Adventure|Animation\r\n"
        '11,"American President, The (1995)",Comedy|Drama|Romance\r\n'
        "99,Babylon 5,(no genres listed)\r\n"
    )
    if tags:
        (root / "tags.csv").write_text(
            "userId,movieId,tag,timestamp\r\n2,1,funny,1445714994\r\n3,1,Funny,1445714995\r\n"
            '2,1,"pixar, animated",1445714996\r\n4,1,dark,1445714997\r\n2,11,politics,1445714998\r\n'
        )
    return root


def test_ml_csv_with_user_tags(tmp_path: Path) -> None:
    ds = load_ml_csv(write_ml_csv(tmp_path / "ml-latest-small"), max_tags=2)
    assert rows(ds) == [
        ("1", "11", 964982224, "rate", 0.5),
        ("1", "1", 964982703, "rate", 4.0),
        ("2", "11", 1445714994, "rate", 5.0),
    ]
    assert ds.catalog.items.ids.tolist() == ["1", "11", "99"]  # the unrated movie stays in the catalogue
    assert titles(ds) == ["Toy Story (1995)", "American President, The (1995)", "Babylon 5"]
    assert ds.catalog.categories.tolist() == [("Adventure", "Animation"), ("Comedy", "Drama", "Romance"), ()]
    # 'funny' twice (case-insensitive, first spelling kept); ties broken alphabetically; max_tags=2
    assert ds.catalog.tags.tolist() == [("funny", "dark"), ("politics",), ()]
    assert ds.catalog.created_at[:2].tolist() == [epoch("1995-01-01")] * 2
    assert np.isnan(ds.catalog.created_at[2])
    assert any("tags.csv: 5 user tag applications on 2 movies" in n for n in ds.notes)


def test_ml_csv_without_tags_file(tmp_path: Path) -> None:
    ds = load_ml_csv(write_ml_csv(tmp_path / "m", tags=False))
    assert ds.catalog.tags.tolist() == [(), (), ()]
    assert not any("tags.csv" in n for n in ds.notes)


# ---------------------------------------------------------------- Amazon


def write_amazon_2018(root: Path, meta: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    t = 1500000000
    reviews = [
        {
            "overall": 5.0,
            "reviewerID": "A1",
            "asin": "B1",
            "style": {"Size:": " S"},
            "reviewText": "Great card",
            "summary": "Five Stars",
            "unixReviewTime": t,
        },
        {
            "overall": 5.0,
            "reviewerID": "A1",
            "asin": "B1",
            "style": {"Size:": " M"},
            "reviewText": "Great card",
            "summary": "Five Stars",
            "unixReviewTime": t,
        },  # the same review repeated for another variant
        {
            "overall": 4.0,
            "reviewerID": "A1",
            "asin": "B2",
            "reviewText": "Nice",
            "summary": "Good",
            "unixReviewTime": t,
        },
        {"overall": 3.0, "reviewerID": "A2", "asin": "B1", "reviewText": "Okay", "unixReviewTime": t + 86400},
        {
            "overall": 2.0,
            "reviewerID": "A2",
            "asin": "B1",
            "reviewText": "Second thoughts",
            "summary": "Meh",
            "unixReviewTime": t + 86400,
        },  # another review the same day: kept
        {"overall": 1.0, "reviewerID": "A2", "asin": "B3", "summary": "Bad", "unixReviewTime": t + 2 * 86400},
    ]
    write_gz_json(root / "Gift_Cards_5.json.gz", reviews)
    if meta:
        b1 = {
            "asin": "B1",
            "title": '<span class="a-size-medium a-color-secondary"',
            "description": ["Line one.", "", "Line two."],
            "feature": ["Never expires", "No fees"],
            "category": ["Gift Cards", "Restaurants", "Gift Cards"],
            "brand": "Acme",
            "price": "$1,250.00",
            "image": ["http://img/b1a.jpg", "http://img/b1b.jpg"],
            "date": "March 5, 2015",
        }
        write_gz_json(
            root / "meta_Gift_Cards.json.gz",
            [
                b1,
                {**b1, "title": "Acme Gift Card"},  # a repeated record, this time with a clean title
                {
                    "asin": "B2",
                    "title": "Plain Card",
                    "description": [],
                    "feature": [],
                    "category": [],
                    "brand": "",
                    "price": ".a-box-inner{background-color:#fff}",
                    "image": [],
                    "date": "",
                },
                {
                    "asin": "B9",
                    "title": "Never reviewed",
                    "description": [],
                    "feature": [],
                    "category": ["Gift Cards"],
                    "brand": "",
                    "price": "$5.00",
                    "image": [],
                    "date": "",
                },
            ],
        )
    return root


def test_amazon_2018(tmp_path: Path) -> None:
    with pytest.warns(DataWarning, match="1 items in the interactions are missing from the catalogue"):
        ds = load_amazon_2018(write_amazon_2018(tmp_path), category="Gift_Cards")
    assert ds.name == "amazon-2018-Gift_Cards"
    t = 1500000000
    assert rows(ds) == [
        ("A1", "B1", t, "rate", 5.0),
        ("A1", "B2", t, "rate", 4.0),
        ("A2", "B1", t + 86400, "rate", 3.0),
        ("A2", "B1", t + 86400, "rate", 2.0),
        ("A2", "B3", t + 2 * 86400, "rate", 1.0),
    ]
    assert ds.interactions.review.tolist() == [
        "Five Stars\nGreat card",
        "Good\nNice",
        "Okay",
        "Meh\nSecond thoughts",
        "Bad",
    ]
    cat = ds.catalog
    assert cat.items.ids.tolist() == ["B1", "B2", "B3"]  # B9 has no reviews; B3 has no metadata
    assert titles(ds) == ["Acme Gift Card", "Plain Card", ""]
    assert cat.text["description"].tolist() == ["Line one. Line two.", "", ""]
    assert cat.text["features"].tolist() == ["Never expires No fees", "", ""]
    assert cat.text["brand"].tolist() == ["Acme", "", ""]
    assert cat.categories.tolist() == [("Gift Cards", "Restaurants"), (), ()]
    assert cat.numeric["price"][0] == 1250.0
    assert np.isnan(cat.numeric["price"][1:]).all()
    assert cat.image.tolist() == ["http://img/b1a.jpg", None, None]
    assert cat.created_at[0] == epoch("2015-03-05")
    notes = "\n".join(ds.notes)
    assert "dropped 1 copies of reviews repeated per product variant" in notes
    assert "blanked 1 titles that are scraped HTML fragments" in notes
    assert "dropped 1 repeated catalogue rows" in notes
    assert "kept metadata of the 3 rows whose items have reviews, of 4" in notes


def test_amazon_2018_all_meta_items_and_no_meta(tmp_path: Path) -> None:
    with pytest.warns(DataWarning):
        ds = load_amazon_2018(write_amazon_2018(tmp_path / "a"), category="Gift_Cards", all_meta_items=True)
    assert "B9" in ds.catalog.items
    bare = load_amazon_2018(write_amazon_2018(tmp_path / "b", meta=False))  # the only category: inferred
    assert len(bare.interactions) == 5
    assert bare.catalog.text == {}
    assert any("no metadata file (meta_Gift_Cards.json.gz)" in n for n in bare.notes)


def test_amazon_2018_category_errors(tmp_path: Path) -> None:
    root = write_amazon_2018(tmp_path, meta=False)
    write_gz_json(
        root / "Appliances_5.json.gz", [{"overall": 1.0, "reviewerID": "x", "asin": "y", "unixReviewTime": 1}]
    )
    with pytest.raises(DataError, match=r"choose a category .*found in .*: Appliances, Gift_Cards"):
        load_amazon_2018(root)
    with pytest.raises(DataError, match=r"amazon-2018-Books: .* lacks Books_5\.json\.gz"):
        load_amazon_2018(root, category="Books")


def test_amazon_2023(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "All_Beauty.jsonl",
        [
            {
                "rating": 5.0,
                "title": "Love it",
                "text": "Smells nice",
                "images": [],
                "asin": "X1",
                "parent_asin": "P1",
                "user_id": "U1",
                "timestamp": 1588687728923,
                "helpful_vote": 0,
                "verified_purchase": True,
            },
            {
                "rating": 3.0,
                "title": "Meh",
                "text": "",
                "images": [],
                "asin": "X2",
                "parent_asin": "P1",
                "user_id": "U2",
                "timestamp": 1588687729000,
                "helpful_vote": 1,
                "verified_purchase": False,
            },
            {
                "rating": 4.0,
                "title": "",
                "text": "Soft skin",
                "images": [],
                "asin": "X3",
                "parent_asin": "P2",
                "user_id": "U1",
                "timestamp": 1600000000000,
                "helpful_vote": 0,
                "verified_purchase": True,
            },
        ],
    )
    with gzip.open(tmp_path / "meta_All_Beauty.jsonl.gz", "wt") as out:
        for record in [
            {
                "main_category": "All Beauty",
                "title": "Rose Soap",
                "features": ["Handmade"],
                "description": ["A soap.", "With roses."],
                "price": 12.5,
                "store": "SoapCo",
                "images": [{"thumb": "t1", "large": "l1", "variant": "MAIN", "hi_res": None}],
                "categories": ["Beauty", "Soap"],
                "details": {"Brand": "SoapCo"},
                "parent_asin": "P1",
            },
            {
                "main_category": "All Beauty",
                "title": "Lotion",
                "features": [],
                "description": [],
                "price": None,
                "store": None,
                "images": [{"thumb": "t2", "large": "l2", "variant": "MAIN", "hi_res": "h2"}],
                "categories": [],
                "details": {},
                "parent_asin": "P2",
            },
        ]:
            out.write(json.dumps(record) + "\n")
    ds = load_amazon_2023(tmp_path, category="All_Beauty")
    assert rows(ds) == [
        ("U1", "P1", 1588687728, "rate", 5.0),
        ("U1", "P2", 1600000000, "rate", 4.0),
        ("U2", "P1", 1588687729, "rate", 3.0),
    ]
    assert ds.interactions.review.tolist() == ["Love it\nSmells nice", "Soft skin", "Meh"]
    assert titles(ds) == ["Rose Soap", "Lotion"]
    assert ds.catalog.text["description"].tolist() == ["A soap. With roses.", ""]
    assert ds.catalog.text["features"].tolist() == ["Handmade", ""]
    assert ds.catalog.text["brand"].tolist() == ["SoapCo", ""]
    assert ds.catalog.categories.tolist() == [("All Beauty", "Beauty", "Soap"), ("All Beauty",)]
    assert ds.catalog.image.tolist() == ["l1", "h2"]
    assert ds.catalog.numeric["price"][0] == 12.5
    assert np.isnan(ds.catalog.numeric["price"][1])


# ---------------------------------------------------------------- MIND


NEWS = [
    'N1\tsports\tfootball_nfl\t"Jeopardy!" champ wins\tAn abstract.\thttps://x/1\t'
    '[{"Label": "Jeopardy!", "Type": "W", "WikidataId": "Q1", "Confidence": 1.0}]\t[]',
    'N2\tnews\tnewsus\tPlain title\t\thttps://x/2\t[]\t[{"Label": "Joe Biden", "Type": "P"}]',
    "N3\tfinance\tmarkets\tStocks rise\tMarkets up.\thttps://x/3\t[]\t[]",
    "N4\tlifestyle\tpets\tDog news\tA dog.\thttps://x/4\t[]\t[]",
]


def write_mind(root: Path, impressions: tuple[str, str, str] = ("N3-1 N4-0", "N3-0 N4-1", "N4-1")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "behaviors.tsv").write_text(
        f"1\tU1\t11/15/2019 8:55:16 AM\tN1 N2\t{impressions[0]}\n"
        f"2\tU2\t11/15/2019 9:00:00 AM\t\t{impressions[1]}\n"
        f"3\tU1\t11/15/2019 10:00:00 AM\tN1 N2\t{impressions[2]}\n"
    )
    (root / "news.tsv").write_text("\n".join(NEWS) + "\n")
    return root


def test_mind(tmp_path: Path) -> None:
    ds = load_mind(write_mind(tmp_path))
    t0, t1, t2 = epoch("2019-11-15 08:55:16"), epoch("2019-11-15 09:00:00"), epoch("2019-11-15 10:00:00")
    assert rows(ds) == [
        ("U1", "N1", t0 - 2, "click", None),
        ("U1", "N2", t0 - 1, "click", None),
        ("U1", "N3", t0, "click", None),
        ("U1", "N4", t0, "view", None),
        ("U1", "N4", t2, "click", None),
        ("U2", "N3", t1, "view", None),
        ("U2", "N4", t1, "click", None),
    ]
    assert titles(ds) == ['"Jeopardy!" champ wins', "Plain title", "Stocks rise", "Dog news"]
    assert ds.catalog.text["description"].tolist() == ["An abstract.", "", "Markets up.", "A dog."]
    assert ds.catalog.categories.tolist()[:2] == [("sports", "football_nfl"), ("news", "newsus")]
    assert ds.catalog.tags.tolist() == [("Jeopardy!",), ("Joe Biden",), (), ()]
    assert any("2 history clicks of 1 users have no time" in n for n in ds.notes)


def test_mind_without_views_and_in_split_folder(tmp_path: Path) -> None:
    write_mind(tmp_path / "MINDsmall_dev")
    ds = load_mind(tmp_path, split="dev", views=False)
    assert len(ds.interactions) == 5
    assert set(ds.interactions.event.tolist()) == {Event.CLICK}
    assert load_source("mind-small", tmp_path, split="dev").name == "mind-dev"
    with pytest.raises(DataError, match=r"lacks behaviors\.tsv"):
        load_source("mind-small", tmp_path)  # split 'train' is not there


def test_mind_test_split_without_labels(tmp_path: Path) -> None:
    root = write_mind(tmp_path, impressions=("N3 N4", "N3", "N4"))
    with pytest.raises(DataError, match=r"4 impressions lack a click label 0/1 \(e\.g\. 'N3'\)"):
        load_mind(root)


def test_mind_bad_time(tmp_path: Path) -> None:
    root = write_mind(tmp_path)
    text = (root / "behaviors.tsv").read_text().replace("11/15/2019 9:00:00 AM", "2019-11-15")
    (root / "behaviors.tsv").write_text(text)
    with pytest.raises(DataError, match=r"column 'time' has 1 values .* \(first at row 2: '2019-11-15'\)"):
        load_mind(root)


# ---------------------------------------------------------------- Goodbooks


BOOKS_HEADER = (
    "book_id,goodreads_book_id,best_book_id,work_id,books_count,isbn,isbn13,authors,original_publication_year,"
    "original_title,title,language_code,average_rating,ratings_count,work_ratings_count,work_text_reviews_count,"
    "ratings_1,ratings_2,ratings_3,ratings_4,ratings_5,image_url,small_image_url"
)


def write_goodbooks(root: Path) -> Path:
    (root / "samples").mkdir(parents=True, exist_ok=True)
    stats = "4.34,10,10,1,1,1,1,1,1"
    (root / "books.csv").write_text(
        "\n".join(
            [
                BOOKS_HEADER,
                f"1,2767052,2767052,2792775,272,439023483,9.78043902348e+12,Suzanne Collins,2008.0,The Hunger Games,"
                f'"The Hunger Games (The Hunger Games, #1)",eng,{stats},https://images.gr-assets.com/books/1m/2767052.jpg,s',
                f'2,3,3,4640799,491,439554934,9.78043955493e+12,"J.K. Rowling, Mary GrandPré",1997.0,'
                f"Harry Potter and the Philosopher's Stone,,eng,{stats},https://images.gr-assets.com/books/1m/3.jpg,s",
                f"3,5000,5000,1,1,,,Homer,-750.0,,The Odyssey,eng,{stats},"
                "https://s.gr-assets.com/assets/nophoto/book/111x148-bcc042a9c91a29c1d680899eff700a03.png,s",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    tags = "tag_id,tag_name\r\n0,-\r\n1,to-read\r\n2,fantasy\r\n3,young-adult\r\n4,classics\r\n"
    (root / "tags.csv").write_text(tags)
    (root / "samples" / "ratings.csv").write_text("user_id,book_id,rating\n1,3,5\n2,1,4\n2,2,5\n1,1,2\n")
    (root / "samples" / "book_tags.csv").write_text(
        "goodreads_book_id,tag_id,count\n2767052,1,100\n2767052,2,50\n2767052,3,60\n3,2,10\n5000,4,7\n999999,2,5\n"
    )
    (root / "samples" / "to_read.csv").write_text("user_id,book_id\n1,2\n3,3\n")
    return root


def test_goodbooks(tmp_path: Path) -> None:
    ds = load_goodbooks_10k(write_goodbooks(tmp_path))
    # no times: file order stands in (row numbers); to_read.csv is not read
    assert rows(ds) == [
        ("1", "3", 0, "rate", 5.0),
        ("1", "1", 3, "rate", 2.0),
        ("2", "1", 1, "rate", 4.0),
        ("2", "2", 2, "rate", 5.0),
    ]
    assert titles(ds) == [
        "The Hunger Games (The Hunger Games, #1)",
        "Harry Potter and the Philosopher's Stone",
        "The Odyssey",
    ]
    assert ds.catalog.text["authors"].tolist() == ["Suzanne Collins", "J.K. Rowling, Mary GrandPré", "Homer"]
    assert ds.catalog.tags.tolist() == [("young-adult", "fantasy"), ("fantasy",), ("classics",)]
    assert ds.catalog.image.tolist() == [
        "https://images.gr-assets.com/books/1m/2767052.jpg",
        "https://images.gr-assets.com/books/1m/3.jpg",
        None,
    ]
    created = ds.catalog.created_at
    assert created[:2].tolist() == [epoch("2008-01-01"), epoch("1997-01-01")]
    assert created[2] < -2700 * 365 * 86400  # 750 BC
    notes = "\n".join(ds.notes)
    assert "ratings.csv was read from samples/ratings.csv" in notes
    assert "book_tags.csv was read from samples/book_tags.csv" in notes
    assert "file order is used as time" in notes
    assert ds.extras["files"] == ["books.csv", "samples/book_tags.csv", "samples/ratings.csv", "tags.csv"]


def test_goodbooks_root_files_win_and_max_tags(tmp_path: Path) -> None:
    root = write_goodbooks(tmp_path)
    (root / "ratings.csv").write_text("user_id,book_id,rating\n7,2,3\n")
    ds = load_goodbooks_10k(root, max_tags=1)
    assert rows(ds) == [("7", "2", 0, "rate", 3.0)]
    assert ds.catalog.tags.tolist() == [("young-adult",), ("fantasy",), ("classics",)]
    assert not any("ratings.csv was read from samples" in n for n in ds.notes)


def test_goodbooks_missing_ratings(tmp_path: Path) -> None:
    root = write_goodbooks(tmp_path)
    (root / "samples" / "ratings.csv").unlink()
    expected = r"lacks ratings\.csv; expected layout: ratings\.csv \(or samples/ratings\.csv\)"
    with pytest.raises(DataError, match=expected):
        load_goodbooks_10k(root)


# ---------------------------------------------------------------- registry


def test_registry_names_and_fields() -> None:
    assert set(SOURCES) >= {
        "ml-100k",
        "ml-1m",
        "ml-latest-small",
        "ml-25m",
        "amazon-2018",
        "amazon-2023",
        "mind-small",
        "goodbooks-10k",
        "s3rec",
        "ml-1m-sasrec",
        "ml-1m-sequences",
    }
    local_only = {name for name, source in SOURCES.items() if not source.files}
    assert local_only == {
        "s3rec",
        "ml-1m-sasrec",
        "ml-1m-sequences",
        "tiktok-mm",
    }  # research files, no published release
    for name, source in SOURCES.items():
        assert source.name == name
        assert source.layout and source.homepage.startswith("https://")
        assert all(f.url.startswith("https://") for f in source.files)
    assert SOURCES["ml-100k"].files[0].url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert SOURCES["ml-100k"].files[0].checksum == ("md5", "0e33842e24a9c977be4e0107933c0723")
    assert SOURCES["ml-latest-small"].files[0].checksum is None  # updated in place by GroupLens
    assert "category" in SOURCES["amazon-2018"].option_names()
    assert SOURCES["s3rec"].option_names() == ("name", "min_user_interactions", "min_item_interactions")
    assert "name" not in SOURCES["ml-latest-small"].option_names()  # fixed by the registry


def test_unknown_source_lists_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown dataset source 'ml-10k'; valid names: ml-100k, ml-1m, "):
        load_source("ml-10k", tmp_path)
    with pytest.raises(DataError, match="goodbooks-10k"):
        get_source("goodreads")


def test_unknown_option_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown option\(s\) categroy; valid options: category, all_meta_items"):
        load_source("amazon-2018", tmp_path, categroy="Gift_Cards")


def test_load_source_finds_the_unzipped_sub_folder(tmp_path: Path) -> None:
    write_ml_100k(tmp_path / "download" / "ml-100k")
    write_ml_100k(tmp_path / "download" / "a-copy")
    assert find_root(get_source("ml-100k"), tmp_path / "download") == tmp_path / "download" / "ml-100k"
    assert len(load_source("ml-100k", tmp_path / "download").interactions) == 4
    write_ml_100k(tmp_path / "two" / "first")
    assert find_root(get_source("ml-100k"), tmp_path / "two") == tmp_path / "two" / "first"
    write_ml_100k(tmp_path / "two" / "second")
    with pytest.raises(DataError, match=r"several sub-folders of .* hold its files \(first, second\)"):
        load_source("ml-100k", tmp_path / "two")


def test_load_source_missing_files_name_them_and_the_layout(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t1\t1\t1\n")
    with pytest.raises(DataError, match=r"ml-100k: .* lacks u\.item; expected layout: u\.data, u\.item .*ml-100k\.zip"):
        load_source("ml-100k", tmp_path)
    with pytest.raises(DataError, match="is not a directory"):
        load_source("ml-100k", tmp_path / "nowhere")


def test_load_source_passes_options(tmp_path: Path) -> None:
    with pytest.warns(DataWarning):
        ds = load_source("amazon-2018", write_amazon_2018(tmp_path), category="Gift_Cards", min_user_interactions=3)
    assert ds.interactions.users.ids.tolist() == ["A2"]
    assert ds.extras["category"] == "Gift_Cards"


# ---------------------------------------------------------------- fetch


def make_zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ml_zip(tmp_path: Path) -> tuple[Path, str]:
    src = write_ml_100k(tmp_path / "src" / "ml-100k")
    archive = tmp_path / "ml-100k.zip"
    digest = make_zip(archive, {f"ml-100k/{p.name}": p.read_bytes() for p in src.iterdir()})
    return archive, digest


def test_fetch_verifies_unpacks_and_reuses(tmp_path: Path, ml_zip: tuple[Path, str]) -> None:
    archive, digest = ml_zip
    files = [RemoteFile(archive.as_uri(), "ml-100k.zip", sha256=digest, extract_to="")]
    cache = tmp_path / "cache"
    root = fetch("ml-100k", cache, files=files, progress=True)
    assert root == cache / "ml-100k" / "ml-100k"
    assert len(load_source("ml-100k", root).interactions) == 4
    archive.unlink()  # a second call must not download: the verified copy is used
    assert fetch("ml-100k", cache, files=files, progress=False) == root
    with pytest.raises(DataError, match="failed"):
        fetch("ml-100k", cache, files=files, progress=False, force=True)


def test_fetch_md5(tmp_path: Path, ml_zip: tuple[Path, str]) -> None:
    archive, _ = ml_zip
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    root = fetch(
        "ml-100k",
        tmp_path / "c",
        files=[RemoteFile(archive.as_uri(), "ml-100k.zip", md5=md5, extract_to="")],
        progress=False,
    )
    assert (root / "u.data").is_file()


def test_fetch_bad_checksum_deletes_the_file(tmp_path: Path, ml_zip: tuple[Path, str]) -> None:
    archive, digest = ml_zip
    wrong = "0" * 64
    files = [RemoteFile(archive.as_uri(), "ml-100k.zip", sha256=wrong, extract_to="")]
    with pytest.raises(DataError, match=rf"expected sha256 {wrong}, got {digest}.*deleted"):
        fetch("ml-100k", tmp_path / "cache", files=files, progress=False)
    assert list((tmp_path / "cache" / "ml-100k").iterdir()) == []


def test_fetch_without_checksum_needs_verify_false(tmp_path: Path, ml_zip: tuple[Path, str]) -> None:
    archive, _ = ml_zip
    files = [RemoteFile(archive.as_uri(), "ml-100k.zip", extract_to="")]
    with pytest.raises(DataError, match=r"no published checksum .* verify=False"):
        fetch("ml-100k", tmp_path / "cache", files=files, progress=False)
    root = fetch("ml-100k", tmp_path / "cache", files=files, progress=False, verify=False)
    assert (root / "u.item").is_file()
    with pytest.raises(DataError, match="no published checksum is known for ml-latest-small.zip"):
        fetch("ml-latest-small", tmp_path / "cache")


def test_fetch_network_failure_suggests_path(tmp_path: Path) -> None:
    files = [RemoteFile((tmp_path / "absent.zip").as_uri(), "ml-100k.zip", sha256="0" * 64, extract_to="")]
    with pytest.raises(DataError, match=r"downloading .*absent\.zip failed .*--path"):
        fetch("ml-100k", tmp_path / "cache", files=files, progress=False)


def test_fetch_plain_files_and_options(tmp_path: Path) -> None:
    src = write_amazon_2018(tmp_path / "src", meta=False)
    review = src / "Gift_Cards_5.json.gz"
    digest = hashlib.sha256(review.read_bytes()).hexdigest()
    files = [RemoteFile(review.as_uri(), "Gift_Cards_5.json.gz", sha256=digest)]
    root = fetch("amazon-2018", tmp_path / "cache", files=files, progress=False, category="Gift_Cards")
    assert root == tmp_path / "cache" / "amazon-2018"
    assert len(load_source("amazon-2018", root, category="Gift_Cards").interactions) == 5
    with pytest.raises(DataError, match=r"downloading needs the option\(s\) category"):
        fetch("amazon-2018", tmp_path / "cache", verify=False)
    urls = [f.url for f in get_source("amazon-2018").remote_files(category="Gift_Cards")]
    assert urls[0].endswith("/categoryFilesSmall/Gift_Cards_5.json.gz")


def test_fetch_refuses_zip_slip(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    digest = make_zip(archive, {"../outside.txt": b"x"})
    files = [RemoteFile(archive.as_uri(), "ml-100k.zip", sha256=digest, extract_to="")]
    with pytest.raises(DataError, match="would unpack outside"):
        fetch("ml-100k", tmp_path / "cache", files=files, progress=False)
    assert not (tmp_path / "cache" / "outside.txt").exists()
