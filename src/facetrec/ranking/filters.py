"""Filters: which items a request may return.

Three kinds, combined into one boolean mask over the catalogue before retrieval (faiss only
searches allowed items, so nothing has to be over-fetched): items the user has already seen,
items blocked for this request (out of stock, already shown, ...), and :class:`Rules` on
catalogue attributes (category include/exclude lists, numeric ranges such as price).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from facetrec.errors import DataError
from facetrec.types import ItemCatalog


@dataclass(frozen=True)
class Rules:
    """Business rules on catalogue attributes; an item must pass all of them.

    Frozen and hashable, so the mask of a rule set is computed once and reused.
    """

    include_categories: tuple[str, ...] = ()
    """Keep only items with at least one of these categories (empty: no restriction)."""
    exclude_categories: tuple[str, ...] = ()
    """Drop items with any of these categories."""
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    """``(attribute, low, high)`` bounds on ``ItemCatalog.numeric`` attributes, inclusive; None
    leaves a side open. A dict ``{"price": (None, 20.0)}`` is accepted and converted."""
    keep_missing: bool = False
    """Whether an item whose attribute is unknown (NaN) passes a range rule on it."""

    def __post_init__(self) -> None:
        for name in ("include_categories", "exclude_categories"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(str(v) for v in value))
        ranges = self.ranges.items() if isinstance(self.ranges, Mapping) else self.ranges
        checked = []
        for entry in ranges:
            if isinstance(self.ranges, Mapping):
                entry = (entry[0], *entry[1])
            if len(entry) != 3:
                raise DataError(f"Rules.ranges: expected (attribute, low, high) entries, got {entry!r}")
            name, low, high = entry
            low = None if low is None else float(low)
            high = None if high is None else float(high)
            if low is not None and high is not None and low > high:
                raise DataError(f"Rules.ranges[{name!r}]: low {low} is above high {high}; swap them")
            checked.append((str(name), low, high))
        object.__setattr__(self, "ranges", tuple(checked))

    @property
    def empty(self) -> bool:
        return not (self.include_categories or self.exclude_categories or self.ranges)


def as_rules(rules: Rules | Mapping[str, Any] | None) -> Rules | None:
    """``rules`` as a :class:`Rules` (a dict of its fields is accepted, e.g. from a JSON request)."""
    if rules is None or isinstance(rules, Rules):
        return rules
    if isinstance(rules, Mapping):
        valid = set(Rules.__dataclass_fields__)
        unknown = sorted(set(rules) - valid)
        if unknown:
            raise DataError(f"rules: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(valid))}")
        return Rules(**rules)
    raise DataError(f"rules: expected a Rules or a dict of its fields, got {type(rules).__name__}")


@dataclass(eq=False)
class CatalogFilter:
    """The catalogue facts rules read: an items x categories matrix and the numeric attributes."""

    category_names: tuple[str, ...]
    item_categories: sp.csr_matrix
    numeric: dict[str, np.ndarray]
    _cache: dict[Rules, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_catalog(cls, catalog: ItemCatalog | None, n_items: int) -> CatalogFilter:
        """Facts of ``catalog`` (empty ones when it is None)."""
        if catalog is None:
            return cls((), sp.csr_matrix((n_items, 0), dtype=np.float64), {})
        names = sorted({c for cats in catalog.categories for c in cats})
        lookup = {c: i for i, c in enumerate(names)}
        lengths = np.fromiter((len(c) for c in catalog.categories), dtype=np.int64, count=n_items)
        cols = np.fromiter((lookup[c] for cats in catalog.categories for c in cats), dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        matrix = sp.csr_matrix((np.ones(len(cols)), cols, indptr), shape=(n_items, len(names)))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return cls(tuple(names), matrix, dict(catalog.numeric))

    def category_columns(self, names: tuple[str, ...], field_name: str) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(self.category_names)}
        missing = [c for c in names if c not in lookup]
        if missing:
            near = difflib.get_close_matches(missing[0], self.category_names, n=3)
            hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
            raise DataError(
                f"rules.{field_name}: category {missing[0]!r} is not in the catalogue "
                f"({len(self.category_names)} categories){hint}"
            )
        return np.array([lookup[c] for c in names], dtype=np.int64)

    def mask(self, rules: Rules) -> np.ndarray:
        """Boolean [n_items]: True where an item passes every rule (cached per rule set)."""
        cached = self._cache.get(rules)
        if cached is not None:
            return cached
        n = self.item_categories.shape[0]
        ok = np.ones(n, dtype=bool)
        if rules.include_categories:
            cols = self.category_columns(rules.include_categories, "include_categories")
            ok &= np.asarray(self.item_categories[:, cols].sum(axis=1)).ravel() > 0
        if rules.exclude_categories:
            cols = self.category_columns(rules.exclude_categories, "exclude_categories")
            ok &= np.asarray(self.item_categories[:, cols].sum(axis=1)).ravel() == 0
        for name, low, high in rules.ranges:
            if name not in self.numeric:
                raise DataError(
                    f"rules.ranges: attribute {name!r} is not a numeric catalogue attribute "
                    f"(known: {', '.join(sorted(self.numeric)) or 'none'})"
                )
            values = self.numeric[name]
            with np.errstate(invalid="ignore"):
                inside = np.ones(n, dtype=bool)
                if low is not None:
                    inside &= values >= low
                if high is not None:
                    inside &= values <= high
            ok &= inside | (rules.keep_missing & np.isnan(values))
        ok.flags.writeable = False
        if len(self._cache) >= 64:
            self._cache.clear()
        self._cache[rules] = ok
        return ok


def check_indices(name: str, idx: Any, n_items: int) -> np.ndarray:
    """``idx`` as a 1-d int64 array of item indices in 0..n_items-1, or a DataError naming ``name``."""
    if idx is None:
        return np.zeros(0, dtype=np.int64)
    arr = np.asarray(idx)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{name}: expected a 1-d array of integer item indices, got {arr.dtype} {arr.shape}")
    if arr.min() < 0 or arr.max() >= n_items:
        bad = int(arr[(arr < 0) | (arr >= n_items)][0])
        raise DataError(f"{name}: item index {bad} is outside the catalogue (0..{n_items - 1})")
    return arr.astype(np.int64)


def allowed_mask(
    n_items: int,
    seen: np.ndarray | None = None,
    blocked: np.ndarray | None = None,
    rules_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean [n_items]: True for items that are neither ``seen`` nor ``blocked`` and pass the rules."""
    allowed = np.ones(n_items, dtype=bool) if rules_mask is None else rules_mask.copy()
    for idx in (seen, blocked):
        if idx is not None and len(idx):
            allowed[idx] = False
    return allowed
