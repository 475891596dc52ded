"""Sequence files of sequential-recommendation papers, and the S3-Rec datasets (Amazon Beauty, Sports, Yelp).

A *sequence-lines* file holds ``user item [item ...]`` per line, integer ids separated by
whitespace; a user's events are appended in file order across lines, so SASRec's ``user item``
per line and S3-Rec's one line per user are the same format. There are no timestamps: order is
time, so each event's time is its position in the user's sequence (0, 1, 2, ...) and a note
says so. Repeated items are kept (Yelp users return to businesses), and a note counts them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from facetrec.data.dataset import Dataset
from facetrec.data.ingest import InteractionColumns, ItemColumns, build_dataset
from facetrec.data.readers import read_table
from facetrec.data.sources import _common
from facetrec.errors import DataError

S3REC_HOMEPAGE = "https://github.com/RUCAIBox/CIKM2020-S3Rec"
S3REC_LAYOUT: _common.Layout = (("{name}.txt",),)

COLUMNS = InteractionColumns(user="user_id", item="item_id", timestamp="position")
"""The events of :func:`read_lines` (and of any table with a per-user ``position``)."""

_S3REC_ITEMS = ItemColumns(item="item_id", title="title", brand="brand", categories="categories", text=("asin",))
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True  # what bytes.split() splits on
_NO_BRAND = "Unknown"  # S3-Rec's attribute for a product without a brand


def read_lines(path: Path) -> pd.DataFrame:
    """The events of a sequence-lines file: ``user_id``, ``item_id`` (ids as written) and ``position``.

    Parsed with numpy over the file's bytes rather than a Python loop per token: the Amazon and
    Yelp files hold 200,000-300,000 events and SASRec's ml-1m.txt a million lines.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    data = path.read_bytes()
    raw = np.frombuffer(data, dtype=np.uint8)
    space = _WHITESPACE[raw]
    bad = ~space & ((raw < ord("0")) | (raw > ord("9")))
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        before = np.flatnonzero(space[:at])
        start = int(before[-1]) + 1 if len(before) else 0
        token = data[start:at].decode("ascii") + data[at:].split(maxsplit=1)[0].decode("utf-8", "replace")
        raise DataError(
            f"{path.name}: line {_line_of(data, at)}: {token!r} is not an integer id; "
            "each line must be 'user item [item ...]' with integer ids"
        )
    if not data.strip():
        raise DataError(f"{path.name}: no events; each line must be 'user item [item ...]'")
    starts = np.flatnonzero(~space & np.concatenate(([True], space[:-1])))
    line = np.searchsorted(np.flatnonzero(raw == ord("\n")), starts)  # 0-based line of each token
    first = np.concatenate(([True], line[1:] != line[:-1]))
    alone = first & np.concatenate((first[1:], [True]))
    if alone.any():
        at = int(np.flatnonzero(alone)[0])
        raise DataError(
            f"{path.name}: line {line[at] + 1}: user {data[starts[at] :].split(maxsplit=1)[0].decode()} has no item; "
            "each line must be 'user item [item ...]'"
        )
    tokens = np.array(data.split())
    owner = np.maximum.accumulate(np.where(first, np.arange(len(tokens)), 0))
    users, items = tokens[owner[~first]], tokens[~first]
    codes = pd.factorize(users)[0]
    return pd.DataFrame(
        {
            "user_id": users.astype(str).astype(object),
            "item_id": items.astype(str).astype(object),
            "position": pd.Series(codes).groupby(codes).cumcount().to_numpy(),
        }
    )


def build(
    events: pd.DataFrame,
    catalog: pd.DataFrame | None,
    *,
    name: str,
    item_columns: ItemColumns,
    source: str,
    items_source: str,
    notes: list[str],
    min_user: int,
    min_item: int,
) -> Dataset:
    """The last step of every sequence reader: positions as times, repeats kept and counted."""
    repeats = int(events.duplicated(["user_id", "item_id"]).sum())
    notes = [
        *notes,
        f"{source}: no timestamps; each event's time is its position in the user's sequence (0, 1, 2, ...), "
        "so only the order within a user is real: a global temporal split is meaningless, use leave-one-out",
    ]
    if repeats:
        notes.append(f"{source}: {repeats:,} events repeat an item already in the user's sequence; they are kept")
    return build_dataset(
        events,
        catalog,
        name=name,
        columns=COLUMNS,
        item_columns=_common.present(item_columns, catalog),
        options=_common.options(False, min_user, min_item, timestamp_unit="s"),
        source=source,
        items_source=items_source,
        notes=tuple(notes),
    )


def load_s3rec(
    path: Path, *, name: str | None = None, min_user_interactions: int = 0, min_item_interactions: int = 0
) -> Dataset:
    """An S3-Rec dataset ``name`` (e.g. Beauty, Sports_and_Outdoors, Yelp): ``NAME.txt`` sequences,
    ``NAME_item2attributes.json`` attribute ids and, when present, ``name_items.csv`` attribute names.

    The dataset is called by the first word of ``name`` in lower case (``Sports_and_Outdoors``:
    ``sports``). Items' categories are their attributes: the names when known, else ``attr ID``
    so that content models and category metrics still see which items share an attribute.
    """
    root = Path(path)
    name = name or _s3rec_name(root)
    events_path = _common.locate(root, "s3rec", (f"{name}.txt",), f"See {S3REC_HOMEPAGE} (data/).")
    events = read_lines(events_path)
    attributes_path = root / f"{name}_item2attributes.json"
    names_path = root / f"{name.lower()}_items.csv"
    catalog, notes = None, []
    if not attributes_path.is_file():
        notes.append(f"no {attributes_path.name} found: items have no attributes")
    elif names_path.is_file():
        catalog = _named_attributes(_attribute_ids(attributes_path), names_path, notes)
    else:
        ids = _attribute_ids(attributes_path)
        catalog = pd.DataFrame({"item_id": ids.index, "categories": [[f"attr {a}" for a in v] for v in ids]})
        notes.append(
            f"{attributes_path.name}: attribute names are unavailable (no {names_path.name}); "
            "categories are the attribute ids, e.g. 'attr 17'"
        )
    dataset = build(
        events,
        catalog,
        name=name.split("_")[0].lower(),
        item_columns=_S3REC_ITEMS,
        source=events_path.name,
        items_source=attributes_path.name,
        notes=notes,
        min_user=min_user_interactions,
        min_item=min_item_interactions,
    )
    return _common.with_extras(dataset, source="s3rec", s3rec_name=name, homepage=S3REC_HOMEPAGE)


def _s3rec_name(root: Path) -> str:
    """The only dataset in ``root`` (a ``NAME.txt`` beside its ``NAME_item2attributes.json``)."""
    texts = sorted(p.stem for p in root.glob("*.txt")) if root.is_dir() else []
    paired = [t for t in texts if (root / f"{t}_item2attributes.json").is_file()]
    if len(paired) == 1:
        return paired[0]
    found = f"; sequence files found in {root}: {', '.join(paired or texts)}" if texts else ""
    raise DataError(f"s3rec: choose a dataset with the 'name' option (e.g. name='Beauty'){found}")


def _attribute_ids(path: Path) -> pd.Series:
    """``{item_id: [attribute_id, ...]}`` as item id -> list of attribute ids (str), in file order."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise DataError(f"{path.name}: expected an object mapping each item id to a list of attribute ids")
    return pd.Series([[str(a) for a in v] for v in raw.values()], index=list(raw), dtype=object)


def _named_attributes(ids: pd.Series, path: Path, notes: list[str]) -> pd.DataFrame:
    """Catalogue rows from ``s3rec_item_id,asin,attributes`` (names joined by ``|``, in the json's id order).

    The brand is the first name when that name never comes later in any item's list: S3-Rec lists
    the brand first, but its attribute-frequency cut removed rare brands, leaving a category first.
    """
    table = read_table(path)
    absent = [c for c in ("s3rec_item_id", "asin", "attributes") if c not in table.columns]
    if absent:
        raise DataError(f"{path.name}: missing column(s) {', '.join(absent)} (columns found: {', '.join(table)})")
    table = table.set_index(table["s3rec_item_id"].str.strip())
    repeated = table.index.duplicated()
    if repeated.any():
        raise DataError(f"{path.name}: item {table.index[repeated][0]} has more than one row")
    names = table["attributes"].reindex(ids.index).fillna("").map(lambda s: s.split("|") if s else [])
    mismatch = (names.map(len) != ids.map(len)).to_numpy()
    if mismatch.any():
        item = ids.index[np.flatnonzero(mismatch)[0]]
        raise DataError(
            f"{path.name}: item {item} has {len(names[item])} attribute names but the json gives it "
            f"{len(ids[item])} ids; the two files do not belong together"
        )
    later = {n for v in names for n in v[1:]}
    brand = names.map(lambda v: v[0] if v and v[0] not in later and v[0] != _NO_BRAND else "")
    rest = [v[1:] if b else v for v, b in zip(names, brand, strict=True)]
    title = [f"{b}: {', '.join(r)}" if b and r else b or ", ".join(r) for b, r in zip(brand, rest, strict=True)]
    notes.append(
        f"{path.name}: categories are the attribute names; titles are 'brand: categories' "
        f"({int((brand != '').sum()):,} items have a brand)"
    )
    return pd.DataFrame(
        {
            "item_id": ids.index,
            "title": title,
            "brand": brand.to_numpy(),
            "categories": names.to_numpy(),
            "asin": table["asin"].reindex(ids.index).to_numpy(),
        }
    )


def _line_of(data: bytes, offset: int) -> int:
    """The 1-based line number of a byte offset."""
    return data.count(b"\n", 0, offset) + 1
