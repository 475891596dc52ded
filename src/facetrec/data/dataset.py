"""Dataset: interactions plus catalogue, and its on-disk form (Parquet files + manifest.json).

A dataset directory is what ``facetrec data import`` writes and every later command reads:

    manifest.json        format version, name, counts, notes from ingestion, a fingerprint
    interactions.parquet user_id, item_id, timestamp, event, rating, weight[, review]
    items.parquet        item_id plus catalogue fields (``vector.NAME``: fixed-size float32 lists),
                         one row per item in index order
    users.parquet        user_id in index order, plus ``attribute.NAME`` string columns (user
                         attributes such as ML-1M's gender and age band; "" when unknown)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from facetrec import __version__
from facetrec.errors import DataError
from facetrec.ids import Vocabulary
from facetrec.types import Event, Interactions, ItemCatalog, object_array

FORMAT_VERSION = 1
_EVENT_NAMES = np.array(Event.names(), dtype=object)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A named pair of :class:`Interactions` and :class:`ItemCatalog` sharing one item vocabulary.

    ``notes`` records what ingestion did to the input (rows dropped and why, items added), so
    that nothing is lost silently; ``extras`` holds small JSON-able facts (e.g. a source's url).
    ``user_attributes`` maps an attribute name (``gender``, ``age``) to a str label per user of
    ``interactions.users`` ("" when unknown): what accuracy by user group is broken down by.
    """

    name: str
    interactions: Interactions
    catalog: ItemCatalog
    notes: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)
    user_attributes: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interactions.items != self.catalog.items:
            raise DataError(
                f"dataset {self.name!r}: interactions and catalogue must share one item vocabulary "
                f"({self.interactions.n_items} vs {len(self.catalog)} items)"
            )
        attributes = {}
        for name, values in self.user_attributes.items():
            labels = object_array(values)
            if labels.shape != (self.interactions.n_users,) or not all(isinstance(v, str) for v in labels):
                raise DataError(
                    f"dataset {self.name!r}: user attribute {name!r} must be one str per user "
                    f"({self.interactions.n_users} users, '' when unknown), got {len(labels)} values"
                )
            attributes[name] = labels
        object.__setattr__(self, "user_attributes", attributes)

    def __repr__(self) -> str:
        i = self.interactions
        return f"Dataset({self.name!r}, interactions={len(i)}, users={i.n_users}, items={i.n_items})"

    def save(self, directory: str | Path) -> Path:
        """Write the dataset to ``directory`` (created if needed) and return the manifest path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(_interactions_table(self.interactions), out / "interactions.parquet")
        pq.write_table(catalog_table(self.catalog), out / "items.parquet")
        users = {"user_id": pa.array(self.interactions.users.ids, pa.string())}
        users |= {f"attribute.{k}": pa.array(v, pa.string()) for k, v in self.user_attributes.items()}
        pq.write_table(pa.table(users), out / "users.parquet")
        manifest = {
            "format": "facetrec-dataset",
            "format_version": FORMAT_VERSION,
            "facetrec_version": __version__,
            "name": self.name,
            "counts": {
                "interactions": len(self.interactions),
                "users": self.interactions.n_users,
                "items": self.interactions.n_items,
            },
            "catalog": {
                "text_fields": sorted(self.catalog.text),
                "numeric_fields": sorted(self.catalog.numeric),
            },
            "has_review": self.interactions.review is not None,
            "fingerprint": _fingerprint(out),
            "notes": list(self.notes),
            "extras": self.extras,
        }
        path = out / "manifest.json"
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        """Read a dataset directory written by :meth:`save`, checking its format and fingerprint."""
        root = Path(directory)
        manifest = read_manifest(root)
        if manifest.get("fingerprint") != _fingerprint(root):
            raise DataError(
                f"{root}: the Parquet files do not match manifest.json's fingerprint; they were changed "
                "after import. Re-run `facetrec data import` to rebuild the dataset."
            )
        user_table = pq.read_table(root / "users.parquet")
        users = Vocabulary(user_table.column("user_id").to_numpy(zero_copy_only=False), "user")
        attributes = {
            name[10:]: object_array(user_table.column(name).to_pylist())
            for name in user_table.column_names
            if name.startswith("attribute.")
        }
        catalog = catalog_from_table(pq.read_table(root / "items.parquet"))
        interactions = _interactions_from_table(pq.read_table(root / "interactions.parquet"), users, catalog.items)
        notes, extras = tuple(manifest.get("notes", ())), manifest.get("extras", {})
        return cls(manifest["name"], interactions, catalog, notes, extras, attributes)


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of a dataset directory, or a DataError saying what is wrong with it."""
    path = root / "manifest.json"
    if not path.is_file():
        raise DataError(
            f"{root}: not a facetrec dataset directory (no manifest.json); create one with `facetrec data import`"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if manifest.get("format") != "facetrec-dataset" or manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: format {manifest.get('format')!r} version {manifest.get('format_version')!r} is not "
            f"'facetrec-dataset' version {FORMAT_VERSION}; re-import the data with this facetrec"
        )
    return manifest


def _fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for name in ("interactions.parquet", "items.parquet", "users.parquet"):
        path = root / name
        if not path.is_file():
            raise DataError(f"{root}: {name} is missing; re-run `facetrec data import`")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _interactions_table(data: Interactions) -> pa.Table:
    columns = {
        "user_id": pa.array(data.users.ids[data.user_idx], pa.string()),
        "item_id": pa.array(data.items.ids[data.item_idx], pa.string()),
        "timestamp": pa.array(data.timestamp),
        "event": pa.array(_EVENT_NAMES[data.event], pa.string()),
        "rating": pa.array(data.rating),
        "weight": pa.array(data.weight),
    }
    if data.review is not None:
        columns["review"] = pa.array(data.review, pa.string())
    return pa.table(columns)


def _interactions_from_table(table: pa.Table, users: Vocabulary, items: Vocabulary) -> Interactions:
    frame = table.to_pandas()
    event = pd.Index(Event.names()).get_indexer(frame["event"])
    return Interactions(
        user_idx=users.lookup(frame["user_id"].to_numpy()),
        item_idx=items.lookup(frame["item_id"].to_numpy()),
        timestamp=frame["timestamp"].to_numpy(np.int64),
        users=users,
        items=items,
        event=event,
        rating=frame["rating"].to_numpy(np.float32),
        weight=frame["weight"].to_numpy(np.float32),
        review=object_array(table.column("review").to_pylist()) if "review" in frame else None,
    )


def catalog_table(catalog: ItemCatalog) -> pa.Table:
    """The catalogue as an Arrow table (items.parquet's columns); :func:`catalog_from_table` reads it back."""
    columns: dict[str, pa.Array] = {"item_id": pa.array(catalog.items.ids, pa.string())}
    for name, values in catalog.text.items():
        columns[f"text.{name}"] = pa.array(values, pa.string())
    columns["categories"] = pa.array([list(t) for t in catalog.categories], pa.list_(pa.string()))
    columns["tags"] = pa.array([list(t) for t in catalog.tags], pa.list_(pa.string()))
    columns["image"] = pa.array(catalog.image, pa.string())
    columns["audio"] = pa.array(catalog.audio, pa.string())
    for name, values in catalog.numeric.items():
        columns[f"numeric.{name}"] = pa.array(values)
    columns["created_at"] = pa.array(catalog.created_at)
    for name, matrix in catalog.vectors.items():
        flat = pa.array(matrix.reshape(-1), pa.float32())
        columns[f"vector.{name}"] = pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1])
    return pa.table(columns)


def catalog_from_table(table: pa.Table) -> ItemCatalog:
    """The catalogue from a table written by :func:`catalog_table` (or a slice of its rows)."""
    vectors = {}
    for name in [c for c in table.column_names if c.startswith("vector.")]:
        column = table.column(name).combine_chunks()
        vectors[name[7:]] = column.values.to_numpy().reshape(len(column), column.type.list_size)
    frame = table.drop_columns([f"vector.{k}" for k in vectors]).to_pandas()
    items = Vocabulary(frame["item_id"].to_numpy(), "item")

    def tuples(name: str) -> np.ndarray:
        return object_array(tuple(v) for v in frame[name])

    return ItemCatalog(
        items=items,
        text={c[5:]: frame[c].to_numpy(object) for c in frame.columns if c.startswith("text.")},
        categories=tuples("categories"),
        tags=tuples("tags"),
        image=object_array(table.column("image").to_pylist()),
        audio=object_array(table.column("audio").to_pylist()),
        numeric={c[8:]: frame[c].to_numpy(np.float64) for c in frame.columns if c.startswith("numeric.")},
        created_at=frame["created_at"].to_numpy(np.float64),
        vectors=vectors,
    )
