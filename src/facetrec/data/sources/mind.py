"""MIND (Microsoft News Dataset) reader: ``behaviors.tsv`` impressions and ``news.tsv`` articles.

Each impression row lists the user's earlier clicks (``history``) and the articles shown
(``N123-1`` clicked, ``N456-0`` not). Shown-and-clicked becomes a click, shown-only a view.
History clicks have no time: they are placed one second apart, in order, just before the
user's first impression, and a note says so. Articles get title, abstract (as description),
category and subcategory, and the names of the entities found in them as tags.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facetrec.data.dataset import Dataset
from facetrec.data.ingest import InteractionColumns, ItemColumns, build_dataset
from facetrec.data.readers import read_table
from facetrec.data.sources import _common
from facetrec.errors import DataError

HOMEPAGE = "https://msnews.github.io/"
LAYOUT: _common.Layout = (
    ("behaviors.tsv", "MINDsmall_{split}/behaviors.tsv", "{split}/behaviors.tsv"),
    ("news.tsv", "MINDsmall_{split}/news.tsv", "{split}/news.tsv"),
)
BEHAVIOR_FIELDS = ["impression_id", "user_id", "time", "history", "impressions"]
NEWS_FIELDS = ["news_id", "category", "subcategory", "title", "abstract", "url", "title_entities", "abstract_entities"]
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
_LABEL = r'"Label":\s*"((?:[^"\\]|\\.)*)"'

_COLUMNS = InteractionColumns(user="user_id", item="item_id", timestamp="timestamp", event="event")
_ITEMS = ItemColumns(item="news_id", title="title", description="abstract", categories="categories", tags="tags")


def load_mind(
    path: Path,
    *,
    split: str = "train",
    views: bool = True,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
) -> Dataset:
    """A MIND split: a folder with behaviors.tsv and news.tsv, or one holding ``MINDsmall_<split>/``.

    ``views=False`` leaves out the shown-but-not-clicked impressions (most of the rows).
    """
    root = Path(path)
    hint = f"Download MINDsmall_{split}.zip from {HOMEPAGE}, unzip it and pass that folder."
    behaviors_path = _common.locate(root, "mind", _split(LAYOUT[0], split), hint)
    news_path = _common.locate(behaviors_path.parent, "mind", ("news.tsv",), hint)
    behaviors = read_table(behaviors_path, "tsv", header=False, names=BEHAVIOR_FIELDS)
    news = read_table(news_path, "tsv", header=False, names=NEWS_FIELDS)

    behaviors["timestamp"] = _times(behaviors, behaviors_path.name)
    shown = _impressions(behaviors, behaviors_path.name)
    notes = [
        f"{behaviors_path.name}: {len(behaviors)} impressions of split {split!r} with {len(shown)} shown "
        f"articles ({int((shown['event'] == 'click').sum())} clicked)"
    ]
    if not views:
        notes.append(
            f"{behaviors_path.name}: left out {int((shown['event'] == 'view').sum())} shown-but-not-clicked "
            "impressions (views=False)"
        )
        shown = shown[shown["event"] == "click"]
    history = _history(behaviors)
    notes.append(
        f"{behaviors_path.name}: {len(history)} history clicks of {history['user_id'].nunique()} users have no time; "
        "they are placed one second apart, in their listed order, just before each user's first impression"
    )
    rows = pd.concat([history, shown], ignore_index=True)

    entities = news["title_entities"].fillna("") + " " + news["abstract_entities"].fillna("")
    catalog = pd.DataFrame(
        {
            "news_id": news["news_id"],
            "title": news["title"],
            "abstract": news["abstract"],
            "categories": news["category"].fillna("") + "|" + news["subcategory"].fillna(""),
            "tags": entities.str.findall(_LABEL),
        }
    )
    dataset = build_dataset(
        rows,
        catalog,
        name=f"mind-{split}",
        columns=_COLUMNS,
        item_columns=_common.present(_ITEMS, catalog),
        options=_common.options(True, min_user_interactions, min_item_interactions, timestamp_unit="s"),
        source=behaviors_path.name,
        items_source=news_path.name,
        notes=tuple(notes),
    )
    return _common.with_extras(dataset, source="mind", split=split, homepage=HOMEPAGE)


def _split(patterns: tuple[str, ...], split: str) -> tuple[str, ...]:
    return tuple(_common.fill(p, {"split": split}) for p in patterns)


def _times(behaviors: pd.DataFrame, where: str) -> np.ndarray:
    """Impression times ("11/15/2019 8:55:16 AM") as int64 epoch seconds, or a DataError naming the row."""
    raw = behaviors["time"].fillna("").str.strip()
    parsed = pd.to_datetime(raw, format=TIME_FORMAT, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: column 'time' has {int(bad.sum())} values not in the form 11/15/2019 8:55:16 AM "
            f"(first at row {first + 1}: {raw.iloc[first]!r})"
        )
    return _common.epoch_seconds(parsed).astype(np.int64)


def _impressions(behaviors: pd.DataFrame, where: str) -> pd.DataFrame:
    """One row per shown article: user, article, impression time, click (label 1) or view (label 0)."""
    shown = behaviors[["user_id", "timestamp"]].assign(entry=behaviors["impressions"].fillna("").str.split())
    shown = shown.explode("entry").dropna(subset=["entry"])
    entry = shown["entry"].astype(str)
    label = entry.str.slice(-2)  # "N123-1" -> "-1"; slicing is much faster than splitting millions of entries
    bad = ~label.isin(["-0", "-1"]).to_numpy()
    if bad.any():
        example = entry.iloc[int(np.flatnonzero(bad)[0])]
        raise DataError(
            f"{where}: {int(bad.sum())} impressions lack a click label 0/1 (e.g. {example!r}); "
            "the MIND test split has no labels: load the train or dev split"
        )
    return pd.DataFrame(
        {
            "user_id": shown["user_id"].to_numpy(),
            "item_id": entry.str.slice(0, -2).to_numpy(),
            "timestamp": shown["timestamp"].to_numpy(),
            "event": np.where(label.to_numpy() == "-1", "click", "view"),
        }
    )


def _history(behaviors: pd.DataFrame) -> pd.DataFrame:
    """Each user's history clicks (from their first impression row), timed just before that impression."""
    first = behaviors.sort_values("timestamp", kind="stable").drop_duplicates("user_id")
    clicks = first[["user_id", "timestamp"]].assign(item_id=first["history"].fillna("").str.split())
    clicks = clicks.explode("item_id").dropna(subset=["item_id"]).reset_index(drop=True)
    position = clicks.groupby("user_id", sort=False).cumcount().to_numpy()
    count = clicks.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    return pd.DataFrame(
        {
            "user_id": clicks["user_id"].to_numpy(),
            "item_id": clicks["item_id"].to_numpy(),
            "timestamp": clicks["timestamp"].to_numpy(np.int64) - (count - position),
            "event": "click",
        }
    )
