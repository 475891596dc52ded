"""Goodbooks-10k reader (zygmuntz/goodbooks-10k): ratings.csv, books.csv and the Goodreads shelves as tags.

ratings.csv has no time column: it is sorted by time, so file order stands in for time (a note
says so). Each file is looked for at the folder's root, then in the publisher's ``samples/``
(100-line excerpts); a note names every file taken from ``samples/``. to_read.csv ("want to
read" marks) is not used: a mark is an intention, not a rating.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from facetrec.data.dataset import Dataset
from facetrec.data.ingest import InteractionColumns, ItemColumns, build_dataset
from facetrec.data.readers import read_table
from facetrec.data.sources import _common
from facetrec.errors import DataError

HOMEPAGE = "https://github.com/zygmuntz/goodbooks-10k"
LAYOUT: _common.Layout = (("ratings.csv", "samples/ratings.csv"), ("books.csv", "samples/books.csv"))

SHELF_TAGS = (
    "to-read",
    "currently-reading",
    "favorites",
    "favourites",
    "owned",
    "own",
    "books-i-own",
    "owned-books",
    "my-books",
    "my-library",
    "library",
    "default",
    "wish-list",
    "wishlist",
    "to-buy",
    "i-own",
    "books",
    "ebook",
    "ebooks",
    "kindle",
    "audiobook",
    "audiobooks",
    "audio",
    "re-read",
    "read",
    "to-read-fiction",
    "all-time-favorites",
    "favorite-books",
    "favorite",
    "faves",
    "must-read",
    "read-in-2016",
    "-",
)
"""Goodreads shelf names that say what a reader did with a book, not what the book is about."""

_COLUMNS = InteractionColumns(user="user_id", item="book_id", timestamp=None, rating="rating")
_ITEMS = ItemColumns(
    item="book_id",
    title="title",
    tags="tags",
    created_at="created_at",
    image="image",
    text=("authors",),
)


def load_goodbooks_10k(
    path: Path,
    *,
    max_tags: int = 10,
    exclude_tags: tuple[str, ...] = SHELF_TAGS,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
) -> Dataset:
    """Ratings (1-5) with books as items: title, authors, publication year, cover URL and top shelf tags.

    Each book keeps its ``max_tags`` most-used shelves, leaving out ``exclude_tags``.
    """
    root = Path(path)
    _common.require(root, "goodbooks-10k", LAYOUT, f"Download goodbooks-10k.zip from {HOMEPAGE} (releases).")
    if max_tags < 0:
        raise DataError(f"goodbooks-10k: max_tags must be >= 0, got {max_tags}")
    used: dict[str, Path] = {}
    for name in ("ratings.csv", "books.csv", "book_tags.csv", "tags.csv"):
        found = _common.find(root, (name, f"samples/{name}"))
        if found is not None:
            used[name] = found
    notes = [
        f"{name} was read from samples/{name} (the publisher's 100-line excerpt): the full file is not at the root"
        for name, found in used.items()
        if _relative(found, root).startswith("samples/")
    ]
    ratings = read_table(used["ratings.csv"])
    books = read_table(used["books.csv"])
    catalog = _books(books)
    if max_tags and "book_tags.csv" in used and "tags.csv" in used:
        top = _top_shelves(
            read_table(used["book_tags.csv"]), read_table(used["tags.csv"]), books, max_tags, exclude_tags
        )
        catalog["tags"] = catalog["book_id"].str.strip().map(top)
        notes.append(
            f"book_tags.csv: {len(top)} books got up to {max_tags} Goodreads shelves as tags "
            f"({len(exclude_tags)} reading-status shelves such as 'to-read' left out)"
        )
    elif max_tags:
        absent = [n for n in ("book_tags.csv", "tags.csv") if n not in used]
        notes.append(f"{' and '.join(absent)} not found: books have no tags")
    dataset = build_dataset(
        ratings,
        catalog,
        name="goodbooks-10k",
        columns=_COLUMNS,
        item_columns=_common.present(_ITEMS, catalog),
        options=_common.options(
            True, min_user_interactions, min_item_interactions, timestamp_unit="s", rating_range=(1, 5)
        ),
        source=_relative(used["ratings.csv"], root),
        items_source=_relative(used["books.csv"], root),
        notes=tuple(notes),
    )
    return _common.with_extras(
        dataset, source="goodbooks-10k", homepage=HOMEPAGE, files=sorted(_relative(p, root) for p in used.values())
    )


def _books(books: pd.DataFrame) -> pd.DataFrame:
    """books.csv as catalogue columns; Goodreads' "nophoto" placeholder covers count as no image."""
    title = books["title"].fillna("").str.strip()
    title = title.where(title != "", books["original_title"].fillna("").str.strip())
    image = books["image_url"].astype(object)
    image = image.where(image.notna() & ~image.fillna("").str.contains("/nophoto/", regex=False), None)
    return pd.DataFrame(
        {
            "book_id": books["book_id"],
            "title": title,
            "authors": books["authors"],
            "created_at": _common.year_start(books["original_publication_year"]),
            "image": image,
        }
    )


def _top_shelves(
    book_tags: pd.DataFrame, tags: pd.DataFrame, books: pd.DataFrame, limit: int, exclude: tuple[str, ...]
) -> pd.Series:
    """book_id -> its ``limit`` most-used shelf names (book_tags is keyed by goodreads_book_id)."""
    names = tags.assign(tag_id=tags["tag_id"].str.strip()).set_index("tag_id")["tag_name"]
    goodreads = books.assign(key=books["goodreads_book_id"].str.strip()).set_index("key")["book_id"].str.strip()
    frame = pd.DataFrame(
        {
            "book_id": book_tags["goodreads_book_id"].str.strip().map(goodreads),
            "tag": book_tags["tag_id"].str.strip().map(names).fillna("").str.strip(),
            "count": pd.to_numeric(book_tags["count"], errors="coerce").fillna(0),
        }
    )
    frame = frame[frame["book_id"].notna() & (frame["tag"] != "") & ~frame["tag"].str.lower().isin(exclude)]
    frame = frame.sort_values(["book_id", "count", "tag"], ascending=[True, False, True], kind="stable")
    top = frame.groupby("book_id", sort=False).head(limit)
    return _common.group_lists(top["book_id"], top["tag"])


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
