"""MovieLens readers (GroupLens): ml-100k, ml-1m and the CSV releases (ml-latest-small, ml-20m, ml-25m).

Each maps the published files to a Dataset whose items carry the richest text available: the
title, genres as categories, user tags (CSV releases with tags.csv) and a release date as
``created_at`` (ml-100k's release date; elsewhere January 1st of the year in the title).

Two ML-1M event files of sequential-recommendation papers have no ratings or times, only each
user's order (see :mod:`facetrec.data.sources.sequences`): SASRec's ``ml-1m.txt`` split and
``sequences.csv.gz``, every rating as an ordered event with the original ids.

Every ML-1M reader also reads ``users.dat`` when it is there: each user's ``gender`` and ``age``
band become :attr:`Dataset.user_attributes`, so accuracy can be broken down by user group.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from facetrec.data.dataset import Dataset
from facetrec.data.ingest import InteractionColumns, ItemColumns, build_dataset
from facetrec.data.readers import read_table
from facetrec.data.sources import _common, sequences
from facetrec.errors import DataError

HOMEPAGE = "https://grouplens.org/datasets/movielens/"
ML_100K_LAYOUT: _common.Layout = (("u.data",), ("u.item",))
ML_1M_LAYOUT: _common.Layout = (("ratings.dat",), ("movies.dat",))
ML_CSV_LAYOUT: _common.Layout = (("ratings.csv",), ("movies.csv",))
SASREC_HOMEPAGE = "https://github.com/kang205/SASRec"
ML_1M_SASREC_LAYOUT: _common.Layout = (("sasrec/ml-1m.txt", "ml-1m.txt"),)
ML_1M_SASREC_MAP = ("sasrec/item_map.csv", "item_map.csv")
ML_1M_SASREC_USER_MAP = ("sasrec/user_map.csv", "user_map.csv")
ML_1M_AGES = {
    "1": "under 18",
    "18": "18-24",
    "25": "25-34",
    "35": "35-44",
    "45": "45-49",
    "50": "50-55",
    "56": "56+",
}
"""users.dat's age codes and the bands they stand for (the ML-1M README)."""
ML_1M_SEQUENCES_LAYOUT: _common.Layout = (("sequences.csv.gz", "sequences.csv"), ("movies.dat",))

ML_100K_GENRES = (
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
)
"""u.item's 19 genre flags, in order (as listed in u.genre)."""

_NOT_A_GENRE = ("unknown", "(no genres listed)")
_RATINGS = InteractionColumns(user="user_id", item="item_id", timestamp="timestamp", rating="rating")
_ITEMS = ItemColumns(item="item_id", title="title", categories="genres", tags="tags", created_at="created_at")
_YEAR_IN_TITLE = r"\((\d{4})(?:\s*[-–]\s*(?:\d{4})?)?\)\s*$"


def _hint(archive: str) -> str:
    return (
        f"Download {archive} from {HOMEPAGE} (files.grouplens.org/datasets/movielens/{archive}), "
        "unzip it and pass the unzipped folder."
    )


def load_ml_100k(path: Path, *, min_user_interactions: int = 0, min_item_interactions: int = 0) -> Dataset:
    """MovieLens 100K: ``u.data`` (tab-separated ratings) and ``u.item`` (pipe-separated, latin-1, genre flags)."""
    root = Path(path)
    _common.require(root, "ml-100k", ML_100K_LAYOUT, _hint("ml-100k.zip"))
    ratings = read_table(root / "u.data", "tsv", header=False, names=["user_id", "item_id", "rating", "timestamp"])
    genres = _ml_100k_genres(root)
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres]
    items = read_table(root / "u.item", "csv", delimiter="|", header=False, names=names, encoding="latin-1")
    flags = items[list(genres)].apply(lambda column: column.str.strip() == "1")
    labels = np.array([f"{g}|" if g not in _NOT_A_GENRE else "" for g in genres], dtype=object)
    genre_text = (flags.astype(np.int64) * labels).sum(axis=1).astype(str).str.removesuffix("|")
    released = pd.to_datetime(items["release_date"].str.strip(), format="%d-%b-%Y", errors="coerce")
    unparsed = int((released.isna() & items["release_date"].fillna("").str.strip().ne("")).sum())
    notes = []
    if unparsed:
        notes.append(f"u.item: {unparsed} release dates could not be read as DD-Mon-YYYY; their created_at is unknown")
    catalog = pd.DataFrame(
        {
            "item_id": items["item_id"],
            "title": items["title"],
            "genres": genre_text,
            "created_at": _common.epoch_seconds(released),
        }
    )
    dataset = build_dataset(
        ratings,
        catalog,
        name="ml-100k",
        columns=_RATINGS,
        item_columns=_common.present(_ITEMS, catalog),
        options=_common.options(
            True, min_user_interactions, min_item_interactions, timestamp_unit="s", rating_range=(1, 5)
        ),
        source="u.data",
        items_source="u.item",
        notes=tuple(notes),
    )
    return _common.with_extras(dataset, source="ml-100k", homepage=HOMEPAGE)


def load_ml_1m(path: Path, *, min_user_interactions: int = 0, min_item_interactions: int = 0) -> Dataset:
    """MovieLens 1M: ``ratings.dat`` and ``movies.dat`` (``::``-separated, latin-1), and users.dat's attributes."""
    root = Path(path)
    _common.require(root, "ml-1m", ML_1M_LAYOUT, _hint("ml-1m.zip"))
    ratings = read_table(
        root / "ratings.dat",
        "csv",
        delimiter="::",
        header=False,
        names=["user_id", "item_id", "rating", "timestamp"],
        encoding="latin-1",
    )
    catalog, notes = _movies_dat(root)
    dataset = build_dataset(
        ratings,
        catalog,
        name="ml-1m",
        columns=_RATINGS,
        item_columns=_common.present(_ITEMS, catalog),
        options=_common.options(
            True, min_user_interactions, min_item_interactions, timestamp_unit="s", rating_range=(1, 5)
        ),
        source="ratings.dat",
        items_source="movies.dat",
        notes=tuple(notes),
    )
    return _common.with_extras(_with_users_dat(dataset, root), source="ml-1m", homepage=HOMEPAGE)


def load_ml_1m_sasrec(path: Path, *, min_user_interactions: int = 0, min_item_interactions: int = 0) -> Dataset:
    """SASRec's ML-1M file (``user item`` lines, ids renumbered, movies with 5+ ratings), exactly as published.

    Items keep SASRec's ids so that results line up with papers using the file; ``sasrec/item_map.csv``
    (``sasrec_item,movie_id``) joins them to movies.dat for title, genres and year, and the MovieLens
    id stays in the text field ``movie_id``. Without the map or movies.dat the items have no text.
    ``sasrec/user_map.csv`` (``sasrec_user,user_id``) likewise joins users to users.dat's gender and age.
    """
    root = Path(path)
    events_path = _common.locate(root, "ml-1m-sasrec", ML_1M_SASREC_LAYOUT[0], f"See {SASREC_HOMEPAGE} (data/).")
    events = sequences.read_lines(events_path)
    map_path = _common.find(root, ML_1M_SASREC_MAP)
    catalog, notes = None, []
    if map_path is None or not (root / "movies.dat").is_file():
        notes.append(f"{ML_1M_SASREC_MAP[0]} or movies.dat not found: items are SASRec ids without titles or genres")
    else:
        mapping = _id_map(map_path, "sasrec_item", "movie_id")
        movies, notes = _movies_dat(root)
        catalog = pd.DataFrame({"item_id": mapping.index, "movie_id": mapping.to_numpy()}).merge(
            movies.assign(movie_id=movies.pop("item_id").str.strip()), on="movie_id", how="left"
        )
        unknown = int(catalog["title"].isna().sum())
        if unknown:
            notes.append(f"{map_path.name}: {unknown} movie ids are not in movies.dat; those items have no text")
    dataset = sequences.build(
        events,
        catalog,
        name="ml-1m-sasrec",
        item_columns=dataclasses.replace(_ITEMS, text=("movie_id",)),
        source=events_path.name,
        items_source=map_path.name if map_path else "items",
        notes=notes,
        min_user=min_user_interactions,
        min_item=min_item_interactions,
    )
    user_map = _common.find(root, ML_1M_SASREC_USER_MAP)
    if user_map is not None:
        mapping = _id_map(user_map, "sasrec_user", "user_id")
        dataset = _with_users_dat(dataset, root, mapping)
    elif (root / "users.dat").is_file():
        dataset = _noted(dataset, f"{ML_1M_SASREC_USER_MAP[0]} not found: users.dat's gender and age are not used")
    return _common.with_extras(dataset, source="ml-1m-sasrec", homepage=SASREC_HOMEPAGE)


def load_ml_1m_sequences(path: Path, *, min_user_interactions: int = 0, min_item_interactions: int = 0) -> Dataset:
    """All ML-1M ratings as ordered events, ``sequences.csv.gz`` (``user_id,item_id,position``, original ids).

    The file has no ratings and no times, only each user's order, so events are clicks timed by
    position; movies.dat gives the items' text as for ml-1m.
    """
    root = Path(path)
    _common.require(root, "ml-1m-sequences", ML_1M_SEQUENCES_LAYOUT)
    events_path = _common.locate(root, "ml-1m-sequences", ML_1M_SEQUENCES_LAYOUT[0])
    catalog, notes = _movies_dat(root)
    dataset = sequences.build(
        read_table(events_path),
        catalog,
        name="ml-1m-sequences",
        item_columns=_ITEMS,
        source=events_path.name,
        items_source="movies.dat",
        notes=[
            f"{events_path.name}: ML-1M's ratings without their values or times: events are clicks in order",
            *notes,
        ],
        min_user=min_user_interactions,
        min_item=min_item_interactions,
    )
    return _common.with_extras(_with_users_dat(dataset, root), source="ml-1m-sequences", homepage=HOMEPAGE)


def load_ml_csv(
    path: Path,
    *,
    name: str = "ml-latest-small",
    max_tags: int = 20,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
) -> Dataset:
    """The CSV releases (ml-latest-small, ml-20m, ml-25m): ratings.csv, movies.csv and, if present, tags.csv.

    User tags become item tags: each movie keeps its ``max_tags`` most frequent tags (case-insensitive).
    """
    root = Path(path)
    _common.require(root, name, ML_CSV_LAYOUT, _hint(f"{name}.zip"))
    if max_tags < 0:
        raise DataError(f"{name}: max_tags must be >= 0, got {max_tags}")
    ratings = read_table(root / "ratings.csv").rename(columns={"userId": "user_id", "movieId": "item_id"})
    movies = read_table(root / "movies.csv").rename(columns={"movieId": "item_id"})
    catalog, notes = _movies(movies, "movies.csv")
    if (root / "tags.csv").is_file() and max_tags:
        tags = read_table(root / "tags.csv")
        top = top_tags(tags, "movieId", "tag", max_tags)
        catalog["tags"] = catalog["item_id"].str.strip().map(top)
        notes.append(
            f"tags.csv: {len(tags)} user tag applications on {len(top)} movies became item tags "
            f"(up to {max_tags} most frequent per movie)"
        )
    dataset = build_dataset(
        ratings,
        catalog,
        name=name,
        columns=_RATINGS,
        item_columns=_common.present(_ITEMS, catalog),
        options=_common.options(
            True, min_user_interactions, min_item_interactions, timestamp_unit="s", rating_range=(0.5, 5)
        ),
        source="ratings.csv",
        items_source="movies.csv",
        notes=tuple(notes),
    )
    return _common.with_extras(dataset, source=name, homepage=HOMEPAGE)


def top_tags(tags: pd.DataFrame, item: str, tag: str, limit: int) -> pd.Series:
    """Item id -> its ``limit`` most frequent tags (case-insensitive, ties alphabetical, first spelling kept)."""
    text = tags[tag].fillna("").astype(str).str.strip()
    frame = pd.DataFrame({"item": tags[item].astype(str).str.strip(), "tag": text, "key": text.str.lower()})
    frame = frame[frame["key"] != ""]
    counts = frame.groupby(["item", "key"], sort=False).agg(tag=("tag", "first"), n=("tag", "size")).reset_index()
    counts = counts.sort_values(["item", "n", "key"], ascending=[True, False, True], kind="stable")
    top = counts.groupby("item", sort=False).head(limit)
    return _common.group_lists(top["item"], top["tag"])


def _movies(movies: pd.DataFrame, where: str) -> tuple[pd.DataFrame, list[str]]:
    """movies.dat/csv rows as catalogue columns; the year in the title gives created_at (January 1st)."""
    years = movies["title"].fillna("").str.extract(_YEAR_IN_TITLE, expand=False)
    genres = movies["genres"].fillna("").str.replace(_NOT_A_GENRE[1], "", regex=False)  # empty parts are dropped
    catalog = pd.DataFrame(
        {
            "item_id": movies["item_id"],
            "title": movies["title"],
            "genres": genres,
            "created_at": _common.year_start(years),
        }
    )
    notes = [
        f"{where}: created_at is January 1st of the release year in the title "
        f"({int(years.isna().sum())} titles have no year)"
    ]
    return catalog, notes


def _movies_dat(root: Path) -> tuple[pd.DataFrame, list[str]]:
    """ML-1M's movies.dat (``::``-separated, latin-1) as catalogue columns, with its notes."""
    movies = read_table(
        root / "movies.dat",
        "csv",
        delimiter="::",
        header=False,
        names=["item_id", "title", "genres"],
        encoding="latin-1",
    )
    return _movies(movies, "movies.dat")


def _ml_100k_genres(root: Path) -> tuple[str, ...]:
    """Genre names from u.genre when present (name|index lines), else the published list."""
    path = root / "u.genre"
    if not path.is_file() or path.stat().st_size == 0:
        return ML_100K_GENRES
    table = read_table(path, "csv", delimiter="|", header=False, names=["genre", "index"], encoding="latin-1")
    table = table[table["genre"].fillna("").str.strip() != ""]
    order = pd.to_numeric(table["index"], errors="coerce")
    if order.isna().any() or len(table) != len(ML_100K_GENRES):
        raise DataError(f"{path}: expected {len(ML_100K_GENRES)} 'name|index' lines, found {len(table)}")
    return tuple(table.assign(order=order).sort_values("order")["genre"].str.strip())


def _id_map(path: Path, key: str, value: str) -> pd.Series:
    """A two-column id map (``key,value``) as a Series of stripped value ids indexed by key id."""
    table = read_table(path)
    absent = [c for c in (key, value) if c not in table.columns]
    if absent:
        raise DataError(f"{path.name}: missing column(s) {', '.join(absent)}; expected {key},{value}")
    return pd.Series(table[value].str.strip().to_numpy(), index=table[key].str.strip().to_numpy())


def _with_users_dat(dataset: Dataset, root: Path, user_map: pd.Series | None = None) -> Dataset:
    """``dataset`` with users.dat's ``gender`` and ``age`` band per user (``user_map``: dataset id ->
    MovieLens id); unchanged without users.dat, and a note counts users it does not describe."""
    path = root / "users.dat"
    if not path.is_file():
        return dataset
    names = ["user_id", "gender", "age", "occupation", "zip"]
    table = read_table(path, "csv", delimiter="::", header=False, names=names, encoding="latin-1")
    table = table.set_index(table["user_id"].str.strip())
    bad = sorted(set(table["age"].str.strip()) - set(ML_1M_AGES))
    if bad:
        raise DataError(f"users.dat: unknown age code(s) {', '.join(bad)}; expected one of {', '.join(ML_1M_AGES)}")
    bad = sorted(set(table["gender"].str.strip()) - {"F", "M"})
    if bad:
        raise DataError(f"users.dat: unknown gender(s) {', '.join(bad)}; expected F or M")
    ids = pd.Series(dataset.interactions.users.ids.astype(str))
    movielens_ids = ids if user_map is None else ids.map(user_map)
    rows = table.reindex(movielens_ids.fillna(""))
    gender = rows["gender"].fillna("").str.strip().to_numpy(object)
    age = rows["age"].fillna("").str.strip().map(lambda code: ML_1M_AGES.get(code, "")).to_numpy(object)
    unknown = int((gender == "").sum())
    dataset = dataclasses.replace(dataset, user_attributes={"gender": gender, "age": age})
    note = f"users.dat: gender and age band of {len(ids) - unknown:,} users"
    return _noted(dataset, note + (f"; {unknown:,} users are not in it (attributes '')" if unknown else ""))


def _noted(dataset: Dataset, note: str) -> Dataset:
    return dataclasses.replace(dataset, notes=(*dataset.notes, note))
