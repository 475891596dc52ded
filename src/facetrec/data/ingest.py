"""Turn raw tables into a validated :class:`Dataset`: map columns, parse, deduplicate, filter.

Nothing is dropped silently: every removal (duplicates, repeated catalogue rows, k-core) and
every repair (items that the catalogue lacks) becomes a note on the dataset and, for repairs, a
:class:`DataWarning`; the counts are also kept in ``dataset.extras["ingest"]`` (and so in
``manifest.json``). Catalogue items without any interaction are kept: they are the cold-start
items that later stages must still be able to recommend.
"""

from __future__ import annotations

import codecs
import dataclasses
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from facetrec.data import parse
from facetrec.data.dataset import Dataset
from facetrec.data.filters import k_core
from facetrec.data.readers import read_table
from facetrec.errors import DataError, DataWarning
from facetrec.ids import Vocabulary
from facetrec.types import Event, Interactions, ItemCatalog, object_array


@dataclass(frozen=True)
class InteractionColumns:
    """Which input column holds each interaction field (None: the input has no such column)."""

    user: str = "user_id"
    """User id column (required)."""
    item: str = "item_id"
    """Item id column (required)."""
    timestamp: str | None = "timestamp"
    """Event time: epoch s/ms/us or date strings. None: file order is used as time."""
    event: str | None = None
    """Event type (click/view/cart/purchase/rate/review, or values mapped by ``event_map``)."""
    rating: str | None = None
    """Explicit rating, e.g. 1-5 stars; empty cells mean no rating."""
    review: str | None = None
    """Review text written with the event."""
    weight: str | None = None
    """How much the event counts (default 1)."""


@dataclass(frozen=True)
class ItemColumns:
    """Which catalogue column holds each item field (None: absent)."""

    item: str = "item_id"
    """Item id column (required), matching the interactions' item ids."""
    title: str | None = None
    description: str | None = None
    brand: str | None = None
    categories: str | None = None
    """Categories: a list column, or text split on ``list_separator``."""
    tags: str | None = None
    """Free-form tags: a list column, or text split on ``list_separator``."""
    price: str | None = None
    created_at: str | None = None
    """When the item appeared (epoch or date strings); drives freshness."""
    image: str | None = None
    """Image path or URL."""
    audio: str | None = None
    """Audio path or URL."""
    text: tuple[str, ...] = ()
    """Further text columns to keep, under their own names."""
    numeric: tuple[str, ...] = ()
    """Further numeric columns to keep, under their own names."""
    list_separator: str = "|"


@dataclass(frozen=True)
class IngestOptions:
    """How to interpret and clean the input."""

    timestamp_unit: str = "auto"
    """auto, s, ms, us or iso (see :func:`facetrec.data.parse.timestamps`)."""
    date_format: str | None = None
    """strftime pattern of date strings, e.g. "%d/%m/%Y". Required for dates whose day and month
    order is ambiguous (03/04/2021); ISO 8601 dates and epoch numbers need none."""
    encoding: str = "utf-8"
    """Text encoding of CSV/TSV/JSONL files, e.g. "latin-1" (Parquet files carry their own)."""
    rating_range: tuple[float, float] | None = None
    """Declared (low, high) rating bounds; a rating outside is an error."""
    dedupe: bool = True
    """Drop exact repeats of (user, item, time, event, review text), keeping the first."""
    min_user_interactions: int = 0
    """k-core: keep users with at least this many interactions (iterated with items)."""
    min_item_interactions: int = 0
    """k-core: keep items with at least this many interactions."""
    event_map: dict[str, str] = field(default_factory=dict)
    """Raw event value -> event name, e.g. {"1": "click", "0": "view"}."""
    default_event: str | None = None
    """Event of every row when there is no event column (default: rate if rated, else click)."""

    def __post_init__(self) -> None:
        if self.timestamp_unit not in parse.TIME_UNITS:
            raise DataError(f"timestamp_unit {self.timestamp_unit!r} is not one of {', '.join(parse.TIME_UNITS)}")
        if self.rating_range is not None and not self.rating_range[0] < self.rating_range[1]:
            raise DataError(f"rating_range {self.rating_range!r} must be (low, high) with low < high")
        if self.min_user_interactions < 0 or self.min_item_interactions < 0:
            raise DataError("k-core minimums must be >= 0")
        for name in [*self.event_map.values(), *([self.default_event] if self.default_event else [])]:
            _event_code(name, "event_map/default_event")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise DataError(
                f"encoding {self.encoding!r} is not a known text encoding; use e.g. utf-8, latin-1 or cp1252"
            ) from None
        if self.date_format is not None and "%" not in self.date_format:
            raise DataError(
                f"date_format {self.date_format!r} has no % directive; write a strftime pattern such as %d/%m/%Y"
            )


def load_files(
    interactions: str | Path,
    items: str | Path | None = None,
    *,
    name: str | None = None,
    columns: InteractionColumns = InteractionColumns(),
    item_columns: ItemColumns = ItemColumns(),
    options: IngestOptions = IngestOptions(),
) -> Dataset:
    """Read an interactions file and an optional catalogue file into a :class:`Dataset`."""
    path = Path(interactions)
    frame = read_table(path, encoding=options.encoding)
    catalog = read_table(Path(items), encoding=options.encoding) if items is not None else None
    return build_dataset(
        frame,
        catalog,
        name=name or path.name.split(".")[0],
        columns=columns,
        item_columns=item_columns,
        options=options,
        source=str(path),
        items_source=str(items),
    )


def build_dataset(
    interactions: pd.DataFrame,
    items: pd.DataFrame | None = None,
    *,
    name: str,
    columns: InteractionColumns = InteractionColumns(),
    item_columns: ItemColumns = ItemColumns(),
    options: IngestOptions = IngestOptions(),
    source: str = "interactions",
    items_source: str = "items",
    notes: tuple[str, ...] = (),
) -> Dataset:
    """Validate and convert raw tables (as read, row order = file order) into a Dataset.

    Every row or item removed is counted in a note and in ``extras["ingest"]``; catalogue items
    without interactions are kept (cold-start items).
    """
    notes_out = list(notes)
    counts: dict[str, int] = {"interaction_rows_read": len(interactions)}
    _require(interactions, source, columns, required=("user", "item"), flag="--map")
    rows = _parse_interactions(interactions, columns, options, source, notes_out, counts)
    if items is not None:
        _require(items, items_source, item_columns, required=("item",), flag="--item-map")
        counts["catalogue_rows_read"] = len(items)
        catalog_rows = _parse_catalog(items, item_columns, options, items_source, notes_out, counts)
    else:
        catalog_rows = pd.DataFrame({"item_id": pd.Series([], dtype=object)})

    if options.min_user_interactions or options.min_item_interactions:
        users_tmp, user_idx = np.unique(rows["user_id"].to_numpy(), return_inverse=True)
        items_tmp, item_idx = np.unique(rows["item_id"].to_numpy(), return_inverse=True)
        keep = k_core(user_idx, item_idx, options.min_user_interactions, options.min_item_interactions)
        if not keep.all():
            # The items k-core removes are those whose every interaction it dropped; catalogue items
            # that never had an interaction are not part of the filter and stay (cold items).
            removed_items = np.delete(items_tmp, np.unique(item_idx[keep]))
            rows = rows[keep]
            counts["kcore_interactions_dropped"] = int((~keep).sum())
            counts["kcore_users_dropped"] = len(users_tmp) - int(rows["user_id"].nunique())
            counts["kcore_items_dropped"] = len(removed_items)
            in_catalogue = catalog_rows["item_id"].isin(removed_items).to_numpy()
            notes_out.append(
                f"k-core (users >= {options.min_user_interactions}, items >= {options.min_item_interactions}): "
                f"dropped {counts['kcore_interactions_dropped']} interactions, {counts['kcore_users_dropped']} "
                f"users and {counts['kcore_items_dropped']} items"
                + (f" ({int(in_catalogue.sum())} of them also from the catalogue)" if in_catalogue.any() else "")
            )
            catalog_rows = catalog_rows[~in_catalogue]
        if rows.empty:
            raise DataError(f"{source}: k-core filtering removed every interaction; lower the minimums")

    catalog_ids = catalog_rows["item_id"].to_numpy(dtype=object)
    interaction_items = pd.unique(rows["item_id"].to_numpy(dtype=object))
    items_vocab = Vocabulary(catalog_ids, "item").extend(rows["item_id"].to_numpy(dtype=object))
    n_added = len(items_vocab) - len(catalog_ids)
    if items is not None and n_added:
        example = items_vocab.ids[len(catalog_ids)]
        counts["items_missing_from_catalogue"] = n_added
        message = (
            f"{items_source}: {n_added} items in the interactions are missing from the catalogue "
            f"(e.g. {example!r}); their interactions are kept and the items have no text"
        )
        warnings.warn(message, DataWarning, stacklevel=_caller_level())
        notes_out.append(message)
    if items is not None:
        cold = int((~pd.Index(catalog_ids).isin(interaction_items)).sum())
        if cold:
            counts["catalogue_items_without_interactions"] = cold
            notes_out.append(
                f"{items_source}: {cold} catalogue items have no interactions; they are kept as cold-start items"
            )
    users_vocab = Vocabulary(pd.unique(rows["user_id"].to_numpy(dtype=object)), "user")
    counts["interactions_kept"] = len(rows)
    dropped = counts["interaction_rows_read"] - len(rows)
    if dropped:
        notes_out.append(
            f"{source}: kept {len(rows):,} of {counts['interaction_rows_read']:,} interaction rows "
            f"({dropped:,} dropped, for the reasons above)"
        )

    data = Interactions(
        user_idx=users_vocab.lookup(rows["user_id"].to_numpy(dtype=object)),
        item_idx=items_vocab.lookup(rows["item_id"].to_numpy(dtype=object)),
        timestamp=rows["timestamp"].to_numpy(np.int64),
        users=users_vocab,
        items=items_vocab,
        event=rows["event"].to_numpy(np.int8),
        rating=rows["rating"].to_numpy(np.float32),
        weight=rows["weight"].to_numpy(np.float32),
        review=parse.optional_text(rows["review"]) if "review" in rows else None,
    ).sorted()
    catalog = _catalog(items_vocab, catalog_rows, item_columns)
    return Dataset(name, data, catalog, tuple(notes_out), {"ingest": counts})


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside facetrec, so that it
    shows the user's line rather than a library file."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("facetrec."):
        frame, level = frame.f_back, level + 1
    return level


def _require(frame: pd.DataFrame, where: str, mapping: object, *, required: tuple[str, ...], flag: str) -> None:
    """Every mapped column must exist; an unmapped default that is absent means 'no such field'."""
    defaults = type(mapping)()
    for f in dataclasses.fields(mapping):  # type: ignore[arg-type]
        value = getattr(mapping, f.name)
        names = value if isinstance(value, tuple) else (value,) if isinstance(value, str) else ()
        if f.name == "list_separator":
            continue
        for column in names:
            explicit = f.name in required or value != getattr(defaults, f.name)
            if column not in frame.columns and explicit:
                raise DataError(
                    f"{where}: missing column {column!r} for field {f.name!r} (columns found: "
                    f"{', '.join(map(str, frame.columns))}); map yours with {flag} {f.name}=COLUMN"
                )


def _parse_interactions(
    frame: pd.DataFrame,
    columns: InteractionColumns,
    options: IngestOptions,
    where: str,
    notes: list[str],
    counts: dict[str, int],
) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "user_id": parse.ids(frame[columns.user], where, columns.user),
            "item_id": parse.ids(frame[columns.item], where, columns.item),
        }
    )
    if columns.timestamp and columns.timestamp in frame.columns:
        out["timestamp"] = parse.timestamps(
            frame[columns.timestamp],
            where,
            columns.timestamp,
            options.timestamp_unit,
            date_format=options.date_format,
        )
    else:
        out["timestamp"] = np.arange(len(frame), dtype=np.int64)
        notes.append(f"{where}: no timestamp column; file order is used as time (row number as timestamp)")
    has_rating = bool(columns.rating)
    rating = (
        parse.numbers(frame[columns.rating], where, columns.rating) if columns.rating else np.full(len(frame), np.nan)
    )
    if options.rating_range is not None:
        low, high = options.rating_range
        bad = (rating < low) | (rating > high)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{where}: column {columns.rating!r} has {int(bad.sum())} ratings outside the declared range "
                f"[{low:g}, {high:g}] (first at row {first + 1}: {rating[first]:g}); fix the data or the range"
            )
    out["rating"] = rating
    out["event"] = _events(frame, columns, options, where, has_rating)
    out["weight"] = (
        parse.numbers(frame[columns.weight], where, columns.weight, required=True) if columns.weight else 1.0
    )
    if columns.review:
        out["review"] = parse.optional_text(frame[columns.review])
    if options.dedupe:
        key = ["user_id", "item_id", "timestamp", "event"] + (["review"] if "review" in out else [])
        repeated = out.duplicated(key).to_numpy()
        if repeated.any():
            out = out[~repeated]
            counts["duplicate_interactions_dropped"] = int(repeated.sum())
            notes.append(
                f"{where}: dropped {int(repeated.sum())} exact duplicate interactions (same user, item, time, event)"
            )
    return out


def _events(
    frame: pd.DataFrame, columns: InteractionColumns, options: IngestOptions, where: str, rated: bool
) -> np.ndarray:
    if not columns.event:
        name = options.default_event or ("rate" if rated else "click")
        return np.full(len(frame), _event_code(name, "default_event"), dtype=np.int8)
    raw = frame[columns.event].astype(str).str.strip()
    mapped = (raw.map(options.event_map).fillna(raw) if options.event_map else raw).str.lower()
    codes = pd.Index(Event.names()).get_indexer(mapped)
    bad = codes < 0
    if bad.any():
        raise parse.failure(
            where,
            columns.event,
            bad,
            frame[columns.event],
            "unknown event types",
            f"use one of {', '.join(Event.names())} or map values with event_map",
        )
    return codes.astype(np.int8)


def _event_code(name: str, where: str) -> int:
    if name.lower() not in Event.names():
        raise DataError(f"{where}: unknown event type {name!r}; use one of {', '.join(Event.names())}")
    return Event[name.upper()].value


def _parse_catalog(
    frame: pd.DataFrame,
    columns: ItemColumns,
    options: IngestOptions,
    where: str,
    notes: list[str],
    counts: dict[str, int],
) -> pd.DataFrame:
    out = pd.DataFrame({"item_id": parse.ids(frame[columns.item], where, columns.item)})
    present = set(frame.columns)
    for field_name in ("title", "description", "brand", *columns.text):
        column = getattr(columns, field_name, None) if field_name in ("title", "description", "brand") else field_name
        if column and column in present:
            out[f"text.{field_name}"] = parse.text(frame[column])
    for field_name in ("categories", "tags"):
        column = getattr(columns, field_name)
        if column and column in present:
            out[field_name] = parse.string_lists(frame[column], columns.list_separator)
    for field_name in ("image", "audio"):
        column = getattr(columns, field_name)
        if column and column in present:
            out[field_name] = parse.optional_text(frame[column])
    for field_name in ("price", *columns.numeric):
        column = columns.price if field_name == "price" else field_name
        if column and column in present:
            out[f"numeric.{field_name}"] = parse.numbers(frame[column], where, column)
    if columns.created_at and columns.created_at in present:
        stamps = parse.timestamps(
            frame[columns.created_at],
            where,
            columns.created_at,
            options.timestamp_unit,
            required=False,
            date_format=options.date_format,
        )
        out["created_at"] = np.where(stamps == np.iinfo(np.int64).min, np.nan, stamps.astype(np.float64))
    repeated = out["item_id"].duplicated().to_numpy()
    if repeated.any():
        example = out["item_id"][repeated].iloc[0]
        out = out[~repeated]
        counts["repeated_catalogue_rows_dropped"] = int(repeated.sum())
        notes.append(
            f"{where}: dropped {int(repeated.sum())} repeated catalogue rows (same item id, e.g. "
            f"{example!r}); the first row of each item is kept"
        )
    return out


def _catalog(items: Vocabulary, rows: pd.DataFrame, columns: ItemColumns) -> ItemCatalog:
    """Align catalogue rows to the item vocabulary; items without a row get empty fields."""
    aligned = rows.set_index("item_id").reindex(items.ids)
    text = {c[5:]: aligned[c].fillna("").to_numpy(dtype=object) for c in aligned.columns if c.startswith("text.")}
    numeric = {c[8:]: aligned[c].to_numpy(np.float64) for c in aligned.columns if c.startswith("numeric.")}

    def tuples(name: str) -> np.ndarray | None:
        if name not in aligned:
            return None
        values = aligned[name].to_numpy(dtype=object)
        return object_array(v if isinstance(v, tuple) else () for v in values)

    def optional(name: str) -> np.ndarray | None:
        if name not in aligned:
            return None
        values = aligned[name].to_numpy(dtype=object)
        return object_array(v if isinstance(v, str) else None for v in values)

    return ItemCatalog(
        items=items,
        text=text,
        categories=tuples("categories"),
        tags=tuples("tags"),
        image=optional("image"),
        audio=optional("audio"),
        numeric=numeric,
        created_at=aligned["created_at"].to_numpy(np.float64) if "created_at" in aligned else None,
    )
