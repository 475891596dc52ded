"""TikTok micro-videos with image and audio vectors, as HKUDS ships them for MMSSL and DiffMM.

``interactions.csv.gz`` holds ``user_id,item_id,split``: 0-based user and item numbers and the
published ``train``/``valid``/``test`` part of each click; ``image_feat.npy`` and
``audio_feat.npy`` hold one 128-d vector per item, row i for item i. There are no times, and the
file is sorted by user, then item: an order a sequence model would learn as if it were real
("the next click has a larger id"). So each user's events get the times 0, 1, 2, ... in a seeded
random order (the same on every import), and nothing about order is real.

Option ``split`` picks a part (``train``, ``valid``, ``test``) or ``all`` (default). Every
part keeps the full user and item vocabularies in the same order, so that the parts of one
folder line up index for index and a benchmark can use the published split as it is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from facetrec.data import parse
from facetrec.data.dataset import Dataset
from facetrec.data.ingest import InteractionColumns, build_dataset
from facetrec.data.readers import read_table
from facetrec.data.sources import _common
from facetrec.data.vectors import attach_item_vectors, load_npy
from facetrec.errors import DataError
from facetrec.ids import Vocabulary
from facetrec.types import Interactions

HOMEPAGE = "https://github.com/HKUDS/DiffMM"
LAYOUT: _common.Layout = (("interactions.csv.gz", "interactions.csv"), ("image_feat.npy",), ("audio_feat.npy",))
SPLITS = ("train", "valid", "test")
VECTORS = {"image": "image_feat.npy", "audio": "audio_feat.npy"}


def load_tiktok_mm(path: Path, *, split: str = "all") -> Dataset:
    """The clicks of part ``split`` (train, valid, test or all) with every item's image and audio vectors.

    The catalogue is every feature row (items "0".."n-1"), so items without a click in the part stay as
    cold-start items; ``extras["split_counts"]`` holds the size of each part of the file.
    """
    if split not in (*SPLITS, "all"):
        raise DataError(f"tiktok-mm: split {split!r} is not one of {', '.join(SPLITS)}, all")
    root = Path(path)
    events_path = _common.locate(root, "tiktok-mm", LAYOUT[0], f"See {HOMEPAGE} (Datasets/tiktok).")
    events = read_table(events_path)
    where = events_path.name
    absent = [c for c in ("user_id", "item_id", "split") if c not in events.columns]
    if absent:
        raise DataError(f"{where}: missing column(s) {', '.join(absent)} (columns found: {', '.join(events.columns)})")
    part = events["split"].astype(str).str.strip()
    bad = ~part.isin(SPLITS).to_numpy()
    if bad.any():
        raise parse.failure(where, "split", bad, events["split"], "unknown parts", f"use {', '.join(SPLITS)}")
    users = parse.ids(events["user_id"], where, "user_id")
    n_items = len(load_npy(root / VECTORS["image"]))
    unknown = ~pd.Index(parse.ids(events["item_id"], where, "item_id")).isin(np.arange(n_items).astype(str))
    if unknown.any():
        fix = f"item ids are the rows of {VECTORS['image']}, 0..{n_items - 1}"
        raise parse.failure(where, "item_id", unknown, events["item_id"], "ids without a feature row", fix)
    codes = pd.factorize(users)[0]
    shuffle = pd.Series(np.random.default_rng(0).random(len(events)))  # fixed: every import agrees
    events["position"] = shuffle.groupby(codes).rank(method="first").to_numpy(np.int64) - 1
    counts = {s: int((part == s).sum()) for s in SPLITS}
    keep = np.ones(len(events), bool) if split == "all" else (part == split).to_numpy()
    notes = [
        f"{where}: no timestamps; each user's events get the times 0, 1, 2, ... in a seeded random order "
        "(the file orders them by item id), so there is no time order: use the published split (option "
        "split) or a random split, never a temporal or leave-one-out one"
    ]
    if split != "all":
        notes.append(f"{where}: split={split}: kept the {counts[split]:,} {split} rows of {len(events):,}")
    dataset = build_dataset(
        events[keep],
        pd.DataFrame({"item_id": np.arange(n_items).astype(str)}),
        name="tiktok-mm" if split == "all" else f"tiktok-mm-{split}",
        columns=InteractionColumns(timestamp="position"),
        options=_common.options(False, 0, 0, timestamp_unit="s"),
        source=where,
        items_source=VECTORS["image"],
        notes=tuple(notes),
    )
    dataset = _with_users(dataset, Vocabulary(pd.unique(users), "user"), split)
    dataset = attach_item_vectors(dataset, {name: root / file for name, file in VECTORS.items()})
    return _common.with_extras(dataset, source="tiktok-mm", homepage=HOMEPAGE, split=split, split_counts=counts)


def _with_users(dataset: Dataset, users: Vocabulary, split: str) -> Dataset:
    """``dataset`` over every user of the file (first-seen order), noting those without an event in the part."""
    data = dataset.interactions
    idle = len(users) - data.n_users
    data = Interactions(
        users.lookup(data.users.ids[data.user_idx]),
        data.item_idx,
        data.timestamp,
        users,
        data.items,
        data.event,
        data.rating,
        data.weight,
    ).sorted()
    notes = dataset.notes
    if idle:
        notes += (
            f"{idle:,} of the {len(users):,} users have no {split} event; they stay in the user vocabulary so that "
            "every part lines up index for index",
        )
    return dataclasses.replace(dataset, interactions=data, notes=notes)
