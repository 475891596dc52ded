"""Boundary types: the frozen dataclasses every stage hands to the next.

Arrays are numpy, validated once in ``__post_init__`` with errors that name the field. Rows of
any user-item matrix are users, always. ``*_id`` is an external id (str), ``*_idx`` an index.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from facetrec.errors import DataError
from facetrec.ids import Vocabulary


class Event(enum.IntEnum):
    """Kinds of behaviour, stored as int8 codes; the order is not a strength ranking."""

    CLICK = 0
    VIEW = 1
    CART = 2
    PURCHASE = 3
    RATE = 4
    REVIEW = 5

    @classmethod
    def names(cls) -> list[str]:
        return [e.name.lower() for e in cls]


MAX_LIST_LENGTH = 10_000
"""Largest ``n`` a :class:`Query` may ask for: beyond it a list is no longer a recommendation."""


def object_array(values: Any) -> np.ndarray:
    """A 1-d object array holding ``values`` as they are (tuples stay tuples, not a 2-d array)."""
    return pd.Series(list(values), dtype=object).to_numpy(dtype=object)


def _array(name: str, value: Any, dtype: Any, n: int | None = None) -> np.ndarray:
    """``value`` as a 1-d array of ``dtype`` and length ``n``, or a DataError naming ``name``."""
    arr = object_array(value) if dtype is object and not isinstance(value, np.ndarray) else np.asarray(value)
    if arr.ndim != 1:
        raise DataError(f"{name}: expected a 1-d array, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise DataError(f"{name}: length {len(arr)} does not match the {n} rows of the other columns")
    if arr.dtype != dtype:
        if np.issubdtype(dtype, np.integer) and arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{name}: expected integers, got dtype {arr.dtype}")
        arr = arr.astype(dtype)
    return arr


def _vectors(name: str, value: Any, n: int) -> np.ndarray:
    """``value`` as a float32 [n, d] matrix of finite numbers (d >= 1), or a DataError naming ``name``."""
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
        raise DataError(f"{name}: expected shape ({n}, d) with d >= 1 for {n} items, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, np.float32)
    bad = ~np.isfinite(arr).all(1)
    if bad.any():
        raise DataError(f"{name}: {int(bad.sum())} rows hold NaN or infinite values (first: row {int(np.argmax(bad))})")
    return arr


def _check_range(name: str, idx: np.ndarray, size: int, vocab: str) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = int(np.flatnonzero((idx < 0) | (idx >= size))[0])
        raise DataError(
            f"{name}: value {int(idx[bad])} at position {bad} is outside the {vocab} vocabulary (0..{size - 1})"
        )


@dataclass(frozen=True, eq=False)
class Interactions:
    """A log of user-item events in a fixed order (by user, then time, ties in file order).

    ``timestamp`` is epoch seconds; ``rating`` is NaN where an event carries none; ``weight``
    is how much the event counts (1 by default); ``review`` holds review text or None.
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    timestamp: np.ndarray
    users: Vocabulary
    items: Vocabulary
    event: np.ndarray | None = None
    rating: np.ndarray | None = None
    weight: np.ndarray | None = None
    review: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(np.asarray(self.user_idx))
        put = object.__setattr__
        put(self, "user_idx", _array("Interactions.user_idx", self.user_idx, np.int32))
        put(self, "item_idx", _array("Interactions.item_idx", self.item_idx, np.int32, n))
        put(self, "timestamp", _array("Interactions.timestamp", self.timestamp, np.int64, n))
        event = np.full(n, Event.CLICK, np.int8) if self.event is None else self.event
        put(self, "event", _array("Interactions.event", event, np.int8, n))
        rating = np.full(n, np.nan, np.float32) if self.rating is None else self.rating
        put(self, "rating", _array("Interactions.rating", rating, np.float32, n))
        weight = np.ones(n, np.float32) if self.weight is None else self.weight
        put(self, "weight", _array("Interactions.weight", weight, np.float32, n))
        if self.review is not None:
            put(self, "review", _array("Interactions.review", self.review, object, n))
        _check_range("Interactions.user_idx", self.user_idx, len(self.users), "user")
        _check_range("Interactions.item_idx", self.item_idx, len(self.items), "item")
        if self.event.size and (self.event.min() < 0 or self.event.max() >= len(Event)):
            raise DataError(f"Interactions.event: codes must be in 0..{len(Event) - 1} ({Event.names()})")
        if not np.isfinite(self.weight).all():
            raise DataError("Interactions.weight: contains NaN or infinite values")

    def __len__(self) -> int:
        return len(self.user_idx)

    def __repr__(self) -> str:
        return f"Interactions(n={len(self)}, users={len(self.users)}, items={len(self.items)})"

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def take(self, rows: np.ndarray) -> Interactions:
        """The events at ``rows`` (a boolean mask or positions), same vocabularies."""
        return Interactions(
            user_idx=self.user_idx[rows],
            item_idx=self.item_idx[rows],
            timestamp=self.timestamp[rows],
            users=self.users,
            items=self.items,
            event=self.event[rows],
            rating=self.rating[rows],
            weight=self.weight[rows],
            review=None if self.review is None else self.review[rows],
        )

    def sorted(self) -> Interactions:
        """Events ordered by user, then time; a stable sort keeps ties in their current order.
        Already sorted (the usual case: every stage sorts once) costs one linear check, no copy."""
        u, t = self.user_idx, self.timestamp
        if len(u) < 2 or bool(np.all((u[1:] > u[:-1]) | ((u[1:] == u[:-1]) & (t[1:] >= t[:-1])))):
            return self
        return self.take(np.lexsort((t, u)))

    def user_offsets(self) -> np.ndarray:
        """``offsets[u]:offsets[u+1]`` are user ``u``'s rows; requires :meth:`sorted` order."""
        counts = np.bincount(self.user_idx, minlength=self.n_users)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def users_per_item(self) -> np.ndarray:
        """How many distinct users have an event with each item (float64 [n_items]): popularity."""
        pairs = np.unique(self.user_idx.astype(np.int64) * self.n_items + self.item_idx)
        return np.bincount(pairs % self.n_items, minlength=self.n_items).astype(np.float64)

    def matrix(self, values: str = "weight") -> sp.csr_matrix:
        """The users x items matrix of summed ``values`` ("weight", "rating" or "ones")."""
        data = {"weight": self.weight, "rating": np.nan_to_num(self.rating), "ones": np.ones(len(self), np.float32)}
        if values not in data:
            raise DataError(f"Interactions.matrix: values must be one of {sorted(data)}, got {values!r}")
        return sp.csr_matrix(
            (data[values], (self.user_idx, self.item_idx)), shape=(self.n_users, self.n_items), dtype=np.float32
        )


@dataclass(frozen=True, eq=False)
class ItemCatalog:
    """What is known about each item, aligned with ``items`` (row i describes item i).

    ``text`` maps field names (title, description, brand, ...) to object arrays of str ("" when
    missing); ``categories`` and ``tags`` hold a tuple of str per item; ``image`` and ``audio``
    hold a path/URL or None; ``numeric`` maps names (price, ...) to float64 arrays (NaN when
    missing); ``created_at`` is epoch seconds as float64, NaN when unknown. ``vectors`` maps a
    modality name ("image", "audio", ...) to precomputed item vectors, float32 [n_items, d]; an
    all-zero row means the item lacks that modality (models mask it, they never read it as data).
    """

    items: Vocabulary
    text: dict[str, np.ndarray] = field(default_factory=dict)
    categories: np.ndarray | None = None
    tags: np.ndarray | None = None
    image: np.ndarray | None = None
    audio: np.ndarray | None = None
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    created_at: np.ndarray | None = None
    vectors: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.items)
        put = object.__setattr__
        put(self, "vectors", {k: _vectors(f"ItemCatalog.vectors[{k!r}]", v, n) for k, v in self.vectors.items()})
        put(self, "text", {k: _array(f"ItemCatalog.text[{k!r}]", v, object, n) for k, v in self.text.items()})
        for k, v in self.text.items():
            if not all(isinstance(s, str) for s in v):
                raise DataError(f"ItemCatalog.text[{k!r}]: every value must be a str (use '' when missing)")
        for name in ("categories", "tags"):
            value = getattr(self, name)
            value = object_array([()] * n) if value is None else value
            arr = _array(f"ItemCatalog.{name}", value, object, n)
            if not all(isinstance(t, tuple) for t in arr):
                raise DataError(f"ItemCatalog.{name}: every value must be a tuple of str")
            put(self, name, arr)
        for name in ("image", "audio"):
            value = getattr(self, name)
            put(self, name, _array(f"ItemCatalog.{name}", [None] * n if value is None else value, object, n))
        put(
            self,
            "numeric",
            {k: _array(f"ItemCatalog.numeric[{k!r}]", v, np.float64, n) for k, v in self.numeric.items()},
        )
        created = np.full(n, np.nan) if self.created_at is None else self.created_at
        put(self, "created_at", _array("ItemCatalog.created_at", created, np.float64, n))

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        dims = {k: v.shape[1] for k, v in self.vectors.items()}
        return f"ItemCatalog(n={len(self)}, text={sorted(self.text)}, numeric={sorted(self.numeric)}, vectors={dims})"

    def concat(self, other: ItemCatalog) -> ItemCatalog:
        """This catalogue with ``other``'s items appended (new items keep their rows' order; a text
        or numeric field only one side has is "" / NaN on the other, a vector set zero rows)."""
        if (self.items.lookup(other.items.ids.tolist()) >= 0).any():
            raise DataError("ItemCatalog.concat: the catalogues share item ids")
        n, m = len(self), len(other)

        def joined(mine: dict, theirs: dict, missing: Any, dtype: Any) -> dict[str, np.ndarray]:
            return {
                k: np.concatenate(
                    [np.asarray(mine.get(k, [missing] * n), dtype), np.asarray(theirs.get(k, [missing] * m), dtype)]
                )
                for k in dict.fromkeys([*mine, *theirs])
            }

        return ItemCatalog(
            self.items.extend(other.items.ids.tolist()),
            joined(self.text, other.text, "", object),
            object_array([*self.categories, *other.categories]),
            object_array([*self.tags, *other.tags]),
            object_array([*self.image, *other.image]),
            object_array([*self.audio, *other.audio]),
            joined(self.numeric, other.numeric, np.nan, np.float64),
            np.concatenate([self.created_at, other.created_at]),
            self._joined_vectors(other),
        )

    def _joined_vectors(self, other: ItemCatalog) -> dict[str, np.ndarray]:
        out = {}
        for name in dict.fromkeys([*self.vectors, *other.vectors]):
            mine, theirs = self.vectors.get(name), other.vectors.get(name)
            dim = (mine if mine is not None else theirs).shape[1]  # type: ignore[union-attr]
            if mine is not None and theirs is not None and mine.shape[1] != theirs.shape[1]:
                raise DataError(f"ItemCatalog.concat: vectors[{name!r}] have {mine.shape[1]} vs {theirs.shape[1]} dims")
            out[name] = np.vstack([
                mine if mine is not None else np.zeros((len(self), dim), np.float32),
                theirs if theirs is not None else np.zeros((len(other), dim), np.float32),
            ])  # fmt: skip
        return out

    def title(self, idx: int) -> str:
        """A human-readable name for item ``idx``: its title, else its id."""
        titles = self.text.get("title")
        return titles[idx] if titles is not None and titles[idx] else str(self.items.id_of(idx))


@dataclass(frozen=True, eq=False)
class ItemEmbeddings:
    """One vector per item (row i is item i of ``items``), from one encoder and modality.

    ``encoder_id`` names what produced the vectors (model and settings), so that vectors from
    different encoders are never mixed; ``normalized`` says whether rows have unit L2 norm.
    """

    vectors: np.ndarray
    items: Vocabulary
    encoder_id: str
    modality: str = "text"
    normalized: bool = False

    def __post_init__(self) -> None:
        vectors = np.asarray(self.vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(self.items):
            raise DataError(
                f"ItemEmbeddings.vectors: expected shape ({len(self.items)}, d) for {len(self.items)} items, "
                f"got {vectors.shape}"
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not np.isfinite(vectors).all():
            raise DataError("ItemEmbeddings.vectors: contains NaN or infinite values")
        object.__setattr__(self, "vectors", vectors)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def normalize(self) -> ItemEmbeddings:
        """Unit-norm copy (zero vectors stay zero), for cosine similarity as a dot product."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        unit = np.divide(self.vectors, norms, out=np.zeros_like(self.vectors), where=norms > 0)
        return ItemEmbeddings(unit, self.items, self.encoder_id, self.modality, True)


@dataclass(frozen=True, eq=False)
class UserState:
    """What a user model knows of one user: ``k`` interest vectors and how much each matters.

    ``interests`` [k, d] live in the item-vector space a scorer ranks with (an item's score
    under interest j is their dot product); ``weights`` [k] are non-negative and sum to 1;
    ``history_idx`` are the item indices the state was built from, oldest first, and
    ``attention`` [k, len(history_idx)] says how much each of them shaped each interest (rows
    sum to 1), which is what explanations and interest labels are made from. ``offsets`` [k],
    when the model has them, make an item's score under interest j ``dot + offsets[j]`` (the
    facet model: the interest's log gate weight minus its log normaliser over the catalogue),
    so that retrieval ranks by the model's own score; without them it is ``weights[j] * dot``.
    """

    interests: np.ndarray
    weights: np.ndarray
    history_idx: np.ndarray
    attention: np.ndarray
    offsets: np.ndarray | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        interests = np.ascontiguousarray(self.interests, dtype=np.float32)
        if interests.ndim != 2 or interests.shape[0] < 1:
            raise DataError(f"UserState.interests: expected shape (k, d) with k >= 1, got {interests.shape}")
        k = interests.shape[0]
        put(self, "interests", interests)
        put(self, "weights", _array("UserState.weights", self.weights, np.float32, k))
        put(self, "history_idx", _array("UserState.history_idx", self.history_idx, np.int32))
        attention = np.asarray(self.attention, dtype=np.float32)
        if attention.shape != (k, len(self.history_idx)):
            raise DataError(
                f"UserState.attention: expected shape ({k}, {len(self.history_idx)}), got {attention.shape}"
            )
        put(self, "attention", attention)
        if not (np.isfinite(interests).all() and np.isfinite(self.weights).all()):
            raise DataError("UserState: interests or weights contain NaN or infinite values")
        if (self.weights < 0).any() or not np.isclose(self.weights.sum(), 1.0, atol=1e-4):
            raise DataError(f"UserState.weights: must be >= 0 and sum to 1, got {self.weights.tolist()}")
        if self.offsets is not None:
            put(self, "offsets", _array("UserState.offsets", self.offsets, np.float32, k))
            if not np.isfinite(self.offsets).all():
                raise DataError(f"UserState.offsets: must be finite, got {self.offsets.tolist()}")

    @property
    def k(self) -> int:
        return self.interests.shape[0]

    def interest_scores(self, dots: np.ndarray) -> np.ndarray:
        """Per-interest scores [k, m] from the dot products [k, m] of the interests with m items."""
        dots = np.asarray(dots, dtype=np.float64)
        if self.offsets is not None:
            return dots + self.offsets[:, None]
        return self.weights[:, None].astype(np.float64) * dots


@dataclass(frozen=True)
class Query:
    """One recommendation request: a known user, a raw history, or both.

    ``history`` (item ids, oldest first) serves new users and anonymous sessions without an
    IndexError; ``exclude`` lists item ids never to return; ``time`` is epoch seconds.
    """

    user_id: str | None = None
    history: tuple[str, ...] = ()
    n: int = 10
    exclude: tuple[str, ...] = ()
    time: int | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.user_id is not None:
            object.__setattr__(self, "user_id", str(self.user_id))
        object.__setattr__(self, "history", tuple(str(i) for i in self.history))
        object.__setattr__(self, "exclude", tuple(str(i) for i in self.exclude))
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer) or not 1 <= self.n <= MAX_LIST_LENGTH:
            raise DataError(f"Query.n: must be an integer from 1 to {MAX_LIST_LENGTH}, got {self.n!r}")


@dataclass(frozen=True, eq=False)
class ItemList:
    """A ranked list of items: internal ``idx``, external ``ids`` and ``scores`` (best first).

    ``fields`` carries per-item extras of the same length (e.g. the interest that produced each
    item, or an explanation). No item appears twice.
    """

    idx: np.ndarray
    ids: np.ndarray
    scores: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(np.asarray(self.idx))
        object.__setattr__(self, "idx", _array("ItemList.idx", self.idx, np.int32))
        object.__setattr__(self, "ids", _array("ItemList.ids", self.ids, object, n))
        object.__setattr__(self, "scores", _array("ItemList.scores", self.scores, np.float32, n))
        object.__setattr__(
            self,
            "fields",
            {k: _array(f"ItemList.fields[{k!r}]", v, np.asarray(v).dtype, n) for k, v in self.fields.items()},
        )
        if len(np.unique(self.idx)) != n:
            raise DataError("ItemList.idx: an item appears more than once")

    def __len__(self) -> int:
        return len(self.idx)

    @classmethod
    def from_idx(cls, idx: np.ndarray, scores: np.ndarray, items: Vocabulary, **fields: np.ndarray) -> ItemList:
        """Build a list from internal indices, filling in the external ids."""
        return cls(idx=idx, ids=items.id_of(np.asarray(idx, dtype=np.int32)), scores=scores, fields=fields)
