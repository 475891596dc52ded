"""Vocabulary: external ids <-> contiguous indices.

External ids are always strings (a CSV's ``1`` and a JSON's ``1`` name the same user), and
indices are int32 positions in first-seen order, so that arrays can be indexed directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from facetrec.errors import DataError, UnknownIdError


class Vocabulary:
    """An immutable, ordered set of external ids with vectorised lookups."""

    __slots__ = ("_index", "name")

    def __init__(self, ids: Iterable[object], name: str = "ids") -> None:
        index = pd.Index(_as_str(ids), dtype=object)
        if not index.is_unique:
            dupes = index[index.duplicated()].unique()[:5].tolist()
            raise DataError(f"{name} vocabulary: ids must be unique; repeated: {dupes}")
        self._index = index
        self.name = name

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, external_id: object) -> bool:
        return str(external_id) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._index.equals(other._index)

    def __hash__(self) -> int:
        return hash((self.name, len(self)))

    def __repr__(self) -> str:
        head = ", ".join(self._index[:3].tolist())
        return f"Vocabulary({self.name!r}, n={len(self)}, [{head}{', ...' if len(self) > 3 else ''}])"

    @property
    def ids(self) -> np.ndarray:
        """All external ids (object array of str) in index order."""
        return self._index.to_numpy()

    def lookup(self, ids: Sequence[object] | np.ndarray) -> np.ndarray:
        """Indices of ``ids``; -1 where an id is unknown (never an exception)."""
        if len(ids) <= SMALL_LOOKUP:  # a request's few ids: the hash table directly (an Index costs ~0.2 ms)
            return np.array([self._position(str(i)) for i in ids], dtype=np.int32)
        query = pd.Index(_as_str(ids), dtype=object)
        return self._index.get_indexer(query).astype(np.int32)

    def _position(self, external_id: str) -> int:
        try:
            return int(self._index.get_loc(external_id))
        except KeyError:
            return -1

    def index(self, external_id: object) -> int:
        """Index of one id; raises :class:`UnknownIdError` naming it when it is unknown."""
        position = self._index.get_indexer([str(external_id)])[0]
        if position < 0:
            raise UnknownIdError(f"unknown {self.name} id {str(external_id)!r} ({len(self)} known)")
        return int(position)

    def id_of(self, idx: int | np.ndarray) -> str | np.ndarray:
        """External id(s) of index/indices; a clear DataError when one is out of range."""
        arr = np.asarray(idx)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            raise DataError(f"{self.name} index out of range 0..{len(self) - 1}: {arr.min()}..{arr.max()}")
        out = self._index.to_numpy()[arr]
        return str(out) if arr.ndim == 0 else out

    def extend(self, ids: Iterable[object]) -> Vocabulary:
        """A new vocabulary with unseen ``ids`` appended in first-seen order."""
        new = pd.unique(_as_str(ids))
        unseen = new[self._index.get_indexer(new) < 0]
        return Vocabulary(np.concatenate([self.ids, unseen]), self.name)


SMALL_LOOKUP = 8
"""Up to this many ids, :meth:`Vocabulary.lookup` asks the index one id at a time (a served
request's ids), which is ~40x faster than building a query Index for them."""


def _as_str(ids: Iterable[object]) -> np.ndarray:
    """Ids as an object array of str: ``1``, ``"1"`` and ``np.int64(1)`` become ``"1"``."""
    values = ids if isinstance(ids, np.ndarray | pd.Series | pd.Index) else list(ids)
    return pd.Series(values, dtype=object).astype(str).to_numpy(dtype=object)
