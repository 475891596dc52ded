"""Amazon review readers (McAuley lab, UCSD): the 2018 release and Amazon Reviews 2023.

Reviews become rated interactions carrying the review text (summary/title + body); the metadata
file gives each item its title, description, features, brand/store, categories, price and an
image URL. Scraped HTML fragments in 2018 titles (``<span class=...``) are blanked, not kept as text.

The 2018 release repeats one review for every product variant; those copies (same user, item,
time and text) are removed here with a note, keeping distinct reviews written on the same day.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from facetrec.data.dataset import Dataset
from facetrec.data.ingest import InteractionColumns, ItemColumns, build_dataset
from facetrec.data.readers import read_table
from facetrec.data.sources import _common
from facetrec.errors import DataError

HOMEPAGE_2018 = "https://nijianmo.github.io/amazon/"
HOMEPAGE_2023 = "https://amazon-reviews-2023.github.io/"
LAYOUT_2018: _common.Layout = (("{category}_5.json.gz", "{category}_5.json", "{category}.json.gz", "{category}.json"),)
META_2018 = ("meta_{category}.json.gz", "metaFiles2/meta_{category}.json.gz", "meta_{category}.json")
LAYOUT_2023: _common.Layout = (("{category}.jsonl.gz", "{category}.jsonl"),)
META_2023 = ("meta_{category}.jsonl.gz", "meta_{category}.jsonl")

_COLUMNS = InteractionColumns(user="user_id", item="item_id", timestamp="timestamp", rating="rating", review="review")
_ITEMS = ItemColumns(
    item="item_id",
    title="title",
    description="description",
    brand="brand",
    categories="categories",
    price="price",
    created_at="created_at",
    image="image",
    text=("features",),
)


def load_amazon_2018(
    path: Path,
    *,
    category: str | None = None,
    all_meta_items: bool = False,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
) -> Dataset:
    """One category of the 2018 release: ``<category>_5.json.gz`` (5-core) or ``<category>.json.gz`` reviews,
    plus ``meta_<category>.json.gz`` when present (also looked for under ``metaFiles2/``).

    The catalogue keeps only reviewed items unless ``all_meta_items``: a category's metadata covers far
    more products than its 5-core reviews.
    """
    root = Path(path)
    category = _category(root, category, LAYOUT_2018[0], "amazon-2018", "Gift_Cards")
    name = f"amazon-2018-{category}"
    reviews_path = _common.locate(root, name, _fill(LAYOUT_2018[0], category), f"Download it from {HOMEPAGE_2018}.")
    raw = read_table(reviews_path, "jsonl")
    _columns(raw, reviews_path.name, ("reviewerID", "asin", "overall", "unixReviewTime"))
    reviews = pd.DataFrame(
        {
            "user_id": raw["reviewerID"],
            "item_id": raw["asin"],
            "timestamp": raw["unixReviewTime"],
            "rating": raw["overall"],
            "review": _common.join_text(_col(raw, "summary"), _col(raw, "reviewText")),
        }
    )
    notes = [f"{reviews_path.name}: {len(reviews)} reviews of category {category}"]
    reviews = _drop_copies(reviews, reviews_path.name, notes)
    meta_path = _common.find(root, _fill(META_2018, category))
    catalog = None
    if meta_path is None:
        notes.append(f"no metadata file ({META_2018[0].format(category=category)}) found: items have no text")
    else:
        meta = read_table(meta_path, "jsonl")
        _columns(meta, meta_path.name, ("asin",))
        images = _col(meta, "imageURLHighRes", _col(meta, "imageURL", _col(meta, "image")))
        catalog = pd.DataFrame(
            {
                "item_id": meta["asin"],
                "title": _col(meta, "title"),
                "description": _common.join_lists(_col(meta, "description")),
                "features": _common.join_lists(_col(meta, "feature")),
                "brand": _col(meta, "brand"),
                "categories": _col(meta, "category"),
                "price": _common.price(_col(meta, "price")),
                "image": _common.first_of(images),
                "created_at": _common.epoch_seconds(
                    pd.to_datetime(_col(meta, "date").fillna(""), format="%B %d, %Y", errors="coerce")
                ),
            }
        )
        catalog = _clean_catalog(catalog, reviews, meta_path.name, all_meta_items, notes)
    dataset = _build(
        reviews, catalog, name, notes, reviews_path, meta_path, "s", min_user_interactions, min_item_interactions
    )
    return _common.with_extras(dataset, source="amazon-2018", category=category, homepage=HOMEPAGE_2018)


def load_amazon_2023(
    path: Path,
    *,
    category: str | None = None,
    all_meta_items: bool = False,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
) -> Dataset:
    """One category of Amazon Reviews 2023: ``<category>.jsonl.gz`` and ``meta_<category>.jsonl.gz``.

    Items are ``parent_asin`` (variants grouped); times are in milliseconds; the review's ``title``
    and ``text`` together are the review text.
    """
    root = Path(path)
    category = _category(root, category, LAYOUT_2023[0], "amazon-2023", "All_Beauty")
    name = f"amazon-2023-{category}"
    reviews_path = _common.locate(root, name, _fill(LAYOUT_2023[0], category), f"Download it from {HOMEPAGE_2023}.")
    raw = read_table(reviews_path, "jsonl")
    _columns(raw, reviews_path.name, ("user_id", "rating", "timestamp"))
    item = "parent_asin" if "parent_asin" in raw.columns else "asin"
    reviews = pd.DataFrame(
        {
            "user_id": raw["user_id"],
            "item_id": _col(raw, item),
            "timestamp": raw["timestamp"],
            "rating": raw["rating"],
            "review": _common.join_text(_col(raw, "title"), _col(raw, "text")),
        }
    )
    notes = [f"{reviews_path.name}: {len(reviews)} reviews of category {category}; items are {item}"]
    reviews = _drop_copies(reviews, reviews_path.name, notes)
    meta_path = _common.find(root, _fill(META_2023, category))
    catalog = None
    if meta_path is None:
        notes.append(f"no metadata file ({META_2023[0].format(category=category)}) found: items have no text")
    else:
        meta = read_table(meta_path, "jsonl")
        _columns(meta, meta_path.name, ("parent_asin",))
        catalog = pd.DataFrame(
            {
                "item_id": meta["parent_asin"],
                "title": _col(meta, "title"),
                "description": _common.join_lists(_col(meta, "description")),
                "features": _common.join_lists(_col(meta, "features")),
                "brand": _col(meta, "store"),
                "categories": _common.concat_lists(_col(meta, "main_category"), _col(meta, "categories")),
                "price": _common.price(_col(meta, "price")),
                "image": _common.first_of(_col(meta, "images"), keys=("hi_res", "large", "thumb")),
            }
        )
        catalog = _clean_catalog(catalog, reviews, meta_path.name, all_meta_items, notes)
    dataset = _build(
        reviews, catalog, name, notes, reviews_path, meta_path, "ms", min_user_interactions, min_item_interactions
    )
    return _common.with_extras(dataset, source="amazon-2023", category=category, homepage=HOMEPAGE_2023)


def _build(
    reviews: pd.DataFrame,
    catalog: pd.DataFrame | None,
    name: str,
    notes: list[str],
    reviews_path: Path,
    meta_path: Path | None,
    unit: str,
    min_user: int,
    min_item: int,
) -> Dataset:
    """The shared last step of both releases: validate and index through ``build_dataset``."""
    return build_dataset(
        reviews,
        catalog,
        name=name,
        columns=_COLUMNS,
        item_columns=_common.present(_ITEMS, catalog),
        options=_common.options(False, min_user, min_item, timestamp_unit=unit, rating_range=(1, 5)),
        source=reviews_path.name,
        items_source=meta_path.name if meta_path else "items",
        notes=tuple(notes),
    )


def _category(root: Path, category: str | None, patterns: tuple[str, ...], source: str, example: str) -> str:
    """The category asked for, or the only one whose review file is in ``root``."""
    if category:
        return category
    found: set[str] = set()
    for pattern in patterns:
        regex = re.compile(re.escape(pattern).replace(re.escape("{category}"), "(.+)") + "$")
        for path in root.glob(_common.fill(pattern, {})) if root.is_dir() else ():
            match = regex.match(path.name)
            if match and not path.name.startswith("meta_"):
                found.add(match[1].removesuffix("_5"))
    if len(found) == 1:
        return found.pop()
    listed = f"; categories found in {root}: {', '.join(sorted(found))}" if found else ""
    raise DataError(f"{source}: choose a category with the 'category' option (e.g. category={example!r}){listed}")


def _fill(patterns: tuple[str, ...], category: str) -> tuple[str, ...]:
    return tuple(_common.fill(p, {"category": category}) for p in patterns)


def _col(frame: pd.DataFrame, column: str, default: pd.Series | None = None) -> pd.Series:
    """A column, or ``default`` (else all-missing) when the file has none: optional fields vary by release."""
    if column in frame.columns:
        return frame[column]
    return default if default is not None else pd.Series(None, index=frame.index, dtype=object)


def _columns(frame: pd.DataFrame, where: str, required: tuple[str, ...]) -> None:
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise DataError(
            f"{where}: missing field(s) {', '.join(absent)} (fields found: {', '.join(frame.columns)}); "
            "is this an Amazon review/metadata file of the right release?"
        )


def _drop_copies(reviews: pd.DataFrame, where: str, notes: list[str]) -> pd.DataFrame:
    """Remove a review's copies (same user, item, time and text), which the 2018 release has per variant."""
    repeated = reviews.duplicated(["user_id", "item_id", "timestamp", "review"]).to_numpy()
    if repeated.any():
        notes.append(
            f"{where}: dropped {int(repeated.sum())} copies of reviews repeated per product variant "
            "(same user, item, time and text)"
        )
    return reviews[~repeated].reset_index(drop=True)


def _clean_catalog(
    catalog: pd.DataFrame, reviews: pd.DataFrame, where: str, all_meta_items: bool, notes: list[str]
) -> pd.DataFrame:
    """Blank HTML-fragment titles, put each item's richest row first, keep reviewed items unless asked."""
    title = catalog["title"].astype(object).where(catalog["title"].notna(), "").astype(str).str.strip()
    html = title.str.startswith("<").to_numpy()
    if html.any():
        notes.append(f"{where}: blanked {int(html.sum())} titles that are scraped HTML fragments (start with '<')")
    catalog = catalog.assign(title=title.where(~html, ""))
    if not all_meta_items:
        reviewed = catalog["item_id"].astype(str).str.strip().isin(set(reviews["item_id"].astype(str).str.strip()))
        if (~reviewed).any():
            notes.append(
                f"{where}: kept metadata of the {int(reviewed.sum())} rows whose items have reviews, of "
                f"{len(catalog)}; pass all_meta_items=True to keep every item"
            )
        catalog = catalog[reviewed.to_numpy()]
    # build_dataset keeps the first row of a repeated item: within each item, put a row with a title first.
    first_seen = catalog.groupby("item_id", sort=False).ngroup().to_numpy()
    empty = (catalog["title"] == "").to_numpy(dtype=np.int8)
    return catalog.iloc[np.lexsort((empty, first_seen))].reset_index(drop=True)
