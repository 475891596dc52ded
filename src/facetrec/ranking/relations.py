"""The item-attribute graph: which catalogue attributes items share, for relation paths and cold items.

Items link to the attributes the catalogue gives them: categories (MovieLens genres, Amazon
categories, S3-Rec attribute names), the brand (``text["brand"]``) and tags. An attribute is
weighted by its inverse document frequency, so that sharing a rare one (a brand, "Film-Noir")
says more than sharing one most items carry ("Drama"). Names match case-insensitively (S3-Rec
lists the brand among the categories too, and a tag may repeat a genre): one attribute, named
as first written.

Two uses, both by :class:`~facetrec.recommender.Recommender`:

- a **relation path** for an explained item: the history item it shares the most weight with,
  and the strongest shared attributes ("shares 'Sci-Fi' and 'Thriller' with Alien");
- a **retrieval source for cold items** (no events yet, so a model scores them poorly or not at
  all): the cosine between an item's weighted attributes and the user's history profile.

A bundle keeps it as ``relations/graph.safetensors`` (the CSR arrays) and ``relations/graph.json``
(names and kinds), so an attribute keeps its column while items are added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from facetrec.errors import ConfigError, DataError
from facetrec.types import ItemCatalog

FORMAT = "facetrec-item-graph"


@dataclass(frozen=True)
class Relation:
    """What links a recommended item to the history: the shared attributes, strongest first, and
    the history item (index) they are shared with."""

    shared: tuple[str, ...]
    with_idx: int


@dataclass(frozen=True, eq=False)
class ItemGraph:
    """Items x attributes (binary CSR, row i is item i), the attributes' names and kinds
    ("category", "brand" or "tag"), and their idf (computed from the links)."""

    links: sp.csr_matrix
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    idf: np.ndarray = field(init=False, repr=False)
    weighted: sp.csr_matrix = field(init=False, repr=False)
    """``links`` with each column times its idf."""

    def __post_init__(self) -> None:
        n, a = self.links.shape
        if a != len(self.names) or len(self.kinds) != len(self.names):
            raise DataError(f"ItemGraph: {a} attribute columns, {len(self.names)} names, {len(self.kinds)} kinds")
        df = np.bincount(self.links.indices, minlength=a)
        object.__setattr__(self, "idf", np.log((1.0 + n) / (1.0 + df)) + 1.0)
        object.__setattr__(self, "weighted", (self.links @ sp.diags(self.idf)).tocsr())

    @property
    def n_items(self) -> int:
        return self.links.shape[0]

    @classmethod
    def from_catalog(cls, catalog: ItemCatalog) -> ItemGraph:
        return cls(sp.csr_matrix((0, 0), dtype=np.float32), (), ()).extend(catalog)

    def extend(self, catalog: ItemCatalog) -> ItemGraph:
        """This graph with ``catalog``'s items appended as rows; attributes not seen before
        become new columns after the existing ones (idf is recomputed over every item)."""
        names, kinds = list(self.names), list(self.kinds)
        column = {name.casefold(): j for j, name in enumerate(names)}
        brands = catalog.text.get("brand")
        indptr, cols = [0], []
        for i in range(len(catalog)):
            found = [("category", c) for c in catalog.categories[i]]
            found += [("brand", brands[i])] if brands is not None else []
            found += [("tag", t) for t in catalog.tags[i]]
            row = set()
            for kind, raw in found:
                name = str(raw).strip()
                if not name:
                    continue
                key = name.casefold()
                if key not in column:
                    column[key] = len(names)
                    names.append(name)
                    kinds.append(kind)
                row.add(column[key])
            cols.extend(sorted(row))
            indptr.append(len(cols))
        shape = (len(catalog), len(names))
        rows = sp.csr_matrix((np.ones(len(cols), np.float32), np.asarray(cols, np.int64), indptr), shape=shape)
        old = self.links.copy()
        old.resize((self.n_items, len(names)))
        return ItemGraph(sp.vstack([old, rows], format="csr", dtype=np.float32), tuple(names), tuple(kinds))

    # ------------------------------------------------------------------ uses

    def relations(self, items: np.ndarray, history: np.ndarray, n_shared: int = 2) -> list[Relation | None]:
        """For each of ``items``, the history item sharing the most idf weight with it and up to
        ``n_shared`` shared attributes by weight (ties: the later history item, then the
        attribute first seen); None when it shares nothing with any of ``history`` (oldest first)."""
        items, history = np.asarray(items, np.int64), np.asarray(history, np.int64)[::-1]  # latest first
        if not len(history) or not len(items):
            return [None] * len(items)
        overlap = (self.weighted[items] @ self.links[history].T).toarray()  # [items, history]
        best = overlap.argmax(axis=1)  # the first maximum: the latest history item
        out: list[Relation | None] = []
        for r, item in enumerate(items):
            if overlap[r, best[r]] <= 0:
                out.append(None)
                continue
            other = int(history[best[r]])
            shared = np.intersect1d(self._row(int(item)), self._row(other))
            top = shared[np.lexsort((shared, -self.idf[shared]))[:n_shared]]
            out.append(Relation(tuple(self.names[a] for a in top), other))
        return out

    def cold_scores(self, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Cosine between each candidate's weighted attributes and the history's profile (the sum
        of its items' weighted attributes); 0 for an item sharing nothing with the history."""
        profile = np.asarray(self.weighted[np.asarray(history, np.int64)].sum(axis=0)).ravel()
        rows = self.weighted[np.asarray(candidates, np.int64)]
        dots = rows @ profile
        norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel()) * np.linalg.norm(profile)
        return np.divide(dots, norms, out=np.zeros(len(dots)), where=norms > 0)

    def _row(self, item: int) -> np.ndarray:
        return self.links.indices[self.links.indptr[item] : self.links.indptr[item + 1]]

    # ------------------------------------------------------------------ files

    def save(self, directory: str | Path) -> None:
        """``graph.safetensors`` (indptr, indices) and ``graph.json`` (format, shape, names, kinds)."""
        from safetensors.numpy import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        arrays = {"indptr": self.links.indptr.astype(np.int64), "indices": self.links.indices.astype(np.int64)}
        save_file(arrays, str(out / "graph.safetensors"))
        meta = {"format": FORMAT, "items": self.n_items, "names": list(self.names), "kinds": list(self.kinds)}
        (out / "graph.json").write_text(json.dumps(meta, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, directory: str | Path, n_items: int) -> ItemGraph:
        """The graph saved in ``directory``; a damaged or mismatched one is one ConfigError line."""
        from facetrec.arrays import map_safetensors
        from facetrec.component import read_json

        root = Path(directory)
        meta = read_json(root / "graph.json")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ConfigError(f"{root / 'graph.json'}: not an item graph (format {FORMAT!r} expected)")
        names, kinds = meta.get("names"), meta.get("kinds")
        if meta.get("items") != n_items or not isinstance(names, list) or not isinstance(kinds, list):
            raise ConfigError(f"{root / 'graph.json'}: expected {n_items} items with lists of names and kinds")
        try:
            arrays = map_safetensors(root / "graph.safetensors")
            indptr, indices = np.asarray(arrays["indptr"], np.int64), np.asarray(arrays["indices"], np.int64)
            links = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(n_items, len(names)))
            links.check_format(full_check=True)
            return cls(links, tuple(map(str, names)), tuple(map(str, kinds)))
        except (OSError, KeyError, ValueError, DataError) as exc:
            raise ConfigError(f"{root / 'graph.safetensors'}: damaged item graph ({exc})") from None
