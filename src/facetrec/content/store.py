"""EmbeddingStore: text embeddings cached on disk by (encoder id, sha256 of the text).

Why: encoding a large catalogue takes hours on a CPU, so nothing should be encoded twice, and an
interrupted run must keep what it finished. Layout, one folder per encoder id (a readable slug
plus a hash, so ids never mix)::

    <directory>/<slug>-<hash>/encoder.json             full encoder id and dimension
    <directory>/<slug>-<hash>/<chunk>.npy              float32 [m, d] vectors, memory-mapped on read
    <directory>/<slug>-<hash>/<chunk>.keys.npy         the m sha256 digests (dtype S32): the index

A chunk is written to temporary names and renamed, vectors first, so it counts only once its
keys file exists: a crash never leaves a half chunk. Chunk names are unique (time + random), so
two processes may append at once. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facetrec.content.base import Progress, TextEncoder, check_texts, progress_bar
from facetrec.errors import DataError
from facetrec.ids import Vocabulary
from facetrec.types import ItemEmbeddings


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """sha256 digests of the UTF-8 texts, as an S32 array (the store's key)."""
    return np.array([hashlib.sha256(t.encode("utf-8")).digest() for t in texts], dtype="S32")


class _Shelf:
    """The chunks of one encoder id: a sorted key index over memory-mapped vector files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.offsets = np.zeros(1, np.int64)
        self.sorted_keys = np.empty(0, "S32")
        self.order = np.empty(0, np.int64)

    def refresh(self) -> None:
        """Pick up chunks written since the last look (by this or another process)."""
        names = sorted(p.name.removesuffix(".keys.npy") for p in self.folder.glob("*.keys.npy"))
        if names == self.names:
            return
        keys = [np.load(self.folder / f"{n}.keys.npy") for n in names]
        self.vectors = [np.load(self.folder / f"{n}.npy", mmap_mode="r") for n in names]
        for name, k, v in zip(names, keys, self.vectors, strict=True):
            if len(k) != len(v):
                raise DataError(f"{self.folder / name}.npy: {len(v)} vectors but {len(k)} keys; delete the chunk")
        self.names = names
        self.offsets = np.concatenate([[0], np.cumsum([len(k) for k in keys])]).astype(np.int64)
        all_keys = np.concatenate(keys) if keys else np.empty(0, "S32")
        self.order = np.argsort(all_keys, kind="stable")
        self.sorted_keys = all_keys[self.order]

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Global row of each key, -1 where absent."""
        if not len(self.sorted_keys):
            return np.full(len(keys), -1, np.int64)
        pos = np.minimum(np.searchsorted(self.sorted_keys, keys), len(self.sorted_keys) - 1)
        return np.where(self.sorted_keys[pos] == keys, self.order[pos], -1)

    def gather(self, rows: np.ndarray, dim: int) -> np.ndarray:
        """Vectors at global ``rows`` (all present), read chunk by chunk from the memory maps."""
        out = np.empty((len(rows), dim), np.float32)
        chunk = np.searchsorted(self.offsets, rows, side="right") - 1
        for c in np.unique(chunk):
            at = np.flatnonzero(chunk == c)
            out[at] = self.vectors[c][rows[at] - self.offsets[c]]
        return out


class EmbeddingStore:
    """A directory of embeddings keyed by (encoder id, text hash), appended in chunks."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._shelves: dict[str, _Shelf] = {}

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.directory)!r})"

    def _folder(self, encoder_id: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", encoder_id)[:60].strip("-")
        return self.directory / f"{slug}-{hashlib.sha256(encoder_id.encode()).hexdigest()[:16]}"

    def _shelf(self, encoder_id: str) -> _Shelf:
        shelf = self._shelves.get(encoder_id)
        if shelf is None:
            shelf = self._shelves[encoder_id] = _Shelf(self._folder(encoder_id))
        info = shelf.folder / "encoder.json"
        if info.is_file() and json.loads(info.read_text())["encoder_id"] != encoder_id:
            raise DataError(f"{info}: holds vectors of another encoder id; remove the folder")
        shelf.refresh()
        return shelf

    def dim(self, encoder_id: str) -> int | None:
        """Vector length stored for ``encoder_id``; None before anything is stored."""
        info = self._folder(encoder_id) / "encoder.json"
        return int(json.loads(info.read_text())["dim"]) if info.is_file() else None

    def encoder_ids(self) -> list[str]:
        """Every encoder id with vectors in the store."""
        found = (json.loads(p.read_text())["encoder_id"] for p in self.directory.glob("*/encoder.json"))
        return sorted(found)

    def count(self, encoder_id: str) -> int:
        """How many vectors are stored for ``encoder_id``."""
        return int(self._shelf(encoder_id).offsets[-1])

    def contains(self, encoder_id: str, keys: np.ndarray) -> np.ndarray:
        """Boolean mask: which ``keys`` (from :func:`text_keys`) have a stored vector."""
        return self._shelf(encoder_id).find(np.asarray(keys, "S32")) >= 0

    def get(self, encoder_id: str, keys: np.ndarray) -> np.ndarray:
        """Stored vectors (float32 [n, d]) for ``keys``; a DataError if one is missing."""
        shelf = self._shelf(encoder_id)
        rows = shelf.find(np.asarray(keys, "S32"))
        if (rows < 0).any():
            raise DataError(f"{self}: {int((rows < 0).sum())} of {len(rows)} keys have no vector for {encoder_id!r}")
        return shelf.gather(rows, self.dim(encoder_id) or 0)

    def add(self, encoder_id: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Append one chunk: ``vectors[i]`` is the embedding of the text with key ``keys[i]``."""
        keys = np.asarray(keys, "S32")
        vectors = np.ascontiguousarray(vectors, np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise DataError(f"vectors: expected shape ({len(keys)}, d) for {len(keys)} keys, got {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise DataError("vectors: contains NaN or infinite values; refusing to cache them")
        folder = self._folder(encoder_id)
        stored = self.dim(encoder_id)
        if stored is not None and stored != vectors.shape[1]:
            raise DataError(f"vectors: dimension {vectors.shape[1]} differs from the stored {stored} of {encoder_id!r}")
        if not len(keys):
            return
        folder.mkdir(parents=True, exist_ok=True)
        if stored is None:
            _write(folder / "encoder.json", json.dumps({"encoder_id": encoder_id, "dim": vectors.shape[1]}).encode())
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        _save(folder / f"{name}.npy", vectors)
        _save(folder / f"{name}.keys.npy", keys)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    with tmp.open("wb") as fh:
        np.save(fh, array, allow_pickle=False)
    os.replace(tmp, path)


def encode_cached(
    encoder: TextEncoder,
    texts: Sequence[str],
    store: EmbeddingStore,
    *,
    chunk_size: int = 10_000,
    batch_size: int = 32,
    progress: Progress = False,
) -> np.ndarray:
    """Vectors for ``texts`` (float32 [n, d]), encoding only texts the store lacks, each distinct text once.

    Missing texts are encoded in catalogue order, ``chunk_size`` at a time, and each chunk is
    saved before the next starts, so a rerun after an interruption resumes where it stopped.
    """
    texts = check_texts(texts)
    if chunk_size < 1:
        raise DataError(f"chunk_size: must be at least 1, got {chunk_size}")
    encoder_id = encoder.encoder_id
    keys = text_keys(texts)
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    missing = np.flatnonzero(~store.contains(encoder_id, unique))
    missing = missing[np.argsort(first[missing], kind="stable")]
    with progress_bar(len(missing), progress) as advance:
        for start in range(0, len(missing), chunk_size):
            part = missing[start : start + chunk_size]
            vectors = encoder.encode([texts[i] for i in first[part]], batch_size=batch_size, progress=advance)
            store.add(encoder_id, unique[part], vectors)
    if not len(texts):
        return np.empty((0, store.dim(encoder_id) or encoder.dim), np.float32)
    return store.get(encoder_id, unique)[inverse.ravel()]


def embed_items(
    encoder: TextEncoder,
    texts: Sequence[str],
    items: Vocabulary,
    store: EmbeddingStore | None = None,
    *,
    batch_size: int = 32,
    chunk_size: int = 10_000,
    progress: Progress = False,
) -> ItemEmbeddings:
    """One vector per item (``texts[i]`` describes item i of ``items``), through ``store`` when given."""
    texts = check_texts(texts)
    if len(texts) != len(items):
        raise DataError(f"texts: {len(texts)} texts for {len(items)} items; pass one text per item, in item order")
    if store is None:
        vectors = encoder.encode(texts, batch_size=batch_size, progress=progress)
    else:
        vectors = encode_cached(encoder, texts, store, chunk_size=chunk_size, batch_size=batch_size, progress=progress)
    return ItemEmbeddings(vectors, items, encoder.encoder_id, modality="text", normalized=encoder.normalize)


def save_item_embeddings(embeddings: ItemEmbeddings, directory: str | Path) -> Path:
    """Write ``item_embeddings.npy`` + ``.json`` into a dataset directory (the ids' hash guards alignment)."""
    out = Path(directory)
    np.save(out / "item_embeddings.npy", embeddings.vectors)
    meta = {
        "encoder_id": embeddings.encoder_id,
        "modality": embeddings.modality,
        "normalized": embeddings.normalized,
        "items": len(embeddings.items),
        "items_sha256": _ids_digest(embeddings.items),
    }
    path = out / "item_embeddings.json"
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def load_item_embeddings(directory: str | Path, items: Vocabulary) -> ItemEmbeddings:
    """Read what :func:`save_item_embeddings` wrote, checking it belongs to ``items``."""
    root = Path(directory)
    meta_path = root / "item_embeddings.json"
    if not meta_path.is_file():
        raise DataError(f"{root}: no item embeddings; create them with `facetrec encode --dataset {root}`")
    meta = json.loads(meta_path.read_text())
    if meta.get("items_sha256") != _ids_digest(items):
        raise DataError(f"{root}: the item embeddings were made for other items; re-run `facetrec encode`")
    vectors = np.load(root / "item_embeddings.npy", mmap_mode="r")
    return ItemEmbeddings(np.asarray(vectors), items, meta["encoder_id"], meta["modality"], meta["normalized"])


def _ids_digest(items: Vocabulary) -> str:
    return hashlib.sha256("\n".join(items.ids.tolist()).encode()).hexdigest()[:16]
