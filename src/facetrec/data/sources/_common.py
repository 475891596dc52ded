"""Helpers shared by the source readers: finding a source's files, dates, list columns, k-core options.

Kept private: the public surface is the registry in :mod:`facetrec.data.sources`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from facetrec.data.dataset import Dataset
from facetrec.data.ingest import IngestOptions
from facetrec.errors import DataError

Layout = tuple[tuple[str, ...], ...]
"""Required files: one tuple per file, holding the accepted relative paths (first is canonical)."""

M = TypeVar("M")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(pattern: str, values: dict[str, object]) -> str:
    """``pattern`` with ``{name}`` filled from ``values``; an unknown or None value becomes ``*`` (a glob)."""
    return _PLACEHOLDER.sub(lambda m: str(values[m[1]]) if values.get(m[1]) is not None else "*", pattern)


def find(root: Path, candidates: Sequence[str]) -> Path | None:
    """The first of ``candidates`` (relative paths, globs allowed) that exists under ``root``."""
    for candidate in candidates:
        if any(ch in candidate for ch in "*?["):
            matches = sorted(p for p in root.glob(candidate) if p.is_file())
            if matches:
                return matches[0]
        elif (root / candidate).is_file():
            return root / candidate
    return None


def missing(root: Path, layout: Layout) -> list[str]:
    """The required files of ``layout`` that ``root`` lacks, named by their canonical path."""
    if not root.is_dir():
        return [group[0] for group in layout]
    return [group[0] for group in layout if find(root, group) is None]


def describe(layout: Layout) -> str:
    """A layout in words: ``u.data, u.item`` or ``ratings.csv (or samples/ratings.csv)``."""
    parts = [group[0] + (f" (or {' or '.join(group[1:])})" if len(group) > 1 else "") for group in layout]
    return ", ".join(parts)


def require(root: Path, source: str, layout: Layout, hint: str = "") -> None:
    """Raise a DataError naming the missing files and the expected layout, unless ``root`` has them all."""
    if not root.is_dir():
        raise DataError(f"{source}: {root} is not a directory; expected one holding {describe(layout)}. {hint}".strip())
    absent = missing(root, layout)
    if absent:
        raise DataError(
            f"{source}: {root} lacks {', '.join(absent)}; expected layout: {describe(layout)}. {hint}".strip()
        )


def locate(root: Path, source: str, candidates: Sequence[str], hint: str = "") -> Path:
    """The first of ``candidates`` under ``root``, or the DataError of :func:`require`."""
    found = find(root, candidates) if root.is_dir() else None
    if found is None:
        require(root, source, (tuple(candidates),), hint)
        raise AssertionError("require() raises when a file is missing")
    return found


def options(dedupe: bool, min_user: int, min_item: int, **kwargs: object) -> IngestOptions:
    """IngestOptions with a source's fixed settings plus the user's k-core minimums."""
    return IngestOptions(dedupe=dedupe, min_user_interactions=min_user, min_item_interactions=min_item, **kwargs)


def present(mapping: M, frame: pd.DataFrame | None) -> M:
    """``mapping`` (Interaction/ItemColumns) with fields whose column ``frame`` lacks set to None.

    build_dataset rejects a mapped column that is absent; a source's optional fields (tags, review)
    depend on which files the publisher shipped, so they are mapped only when built.
    """
    if frame is None:
        return mapping
    absent = {
        f.name: None
        for f in dataclasses.fields(mapping)  # type: ignore[arg-type]
        if isinstance(getattr(mapping, f.name), str)
        and f.name not in ("user", "item", "list_separator")
        and getattr(mapping, f.name) not in frame.columns
    }
    extra = getattr(mapping, "text", None)
    if isinstance(extra, tuple):
        absent["text"] = tuple(c for c in extra if c in frame.columns)
    return dataclasses.replace(mapping, **absent)  # type: ignore[type-var]


def with_extras(dataset: Dataset, **extras: object) -> Dataset:
    """The dataset with ``extras`` (small JSON-able facts: source name, homepage, files read) added."""
    return dataclasses.replace(dataset, extras={**dataset.extras, **extras})


def epoch_seconds(times: pd.Series) -> np.ndarray:
    """Float epoch seconds of a datetime Series; NaN where NaT."""
    values = pd.to_datetime(times, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[s]")
    out = values.astype(np.int64).astype(np.float64)
    out[np.isnat(values)] = np.nan
    return out


def year_start(years: pd.Series) -> np.ndarray:
    """Epoch seconds of January 1st of each year (works for years before 1677 too); NaN where missing."""
    numeric = pd.to_numeric(years, errors="coerce").to_numpy(dtype=np.float64)
    out = np.full(len(numeric), np.nan)
    known = np.isfinite(numeric)
    offsets = numeric[known].astype(np.int64) - 1970
    out[known] = offsets.astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)
    return out


def group_lists(keys: pd.Series | np.ndarray, values: pd.Series | np.ndarray) -> pd.Series:
    """key -> list of its values in their given order; one sort instead of a Python call per group
    (pandas' ``groupby(...).agg(list)`` is ten times slower on a million rows)."""
    codes, uniques = pd.factorize(np.asarray(keys, dtype=object))
    order = np.argsort(codes, kind="stable")
    ordered = np.asarray(values, dtype=object)[order]
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    chunks = np.split(ordered, bounds) if len(ordered) else []
    return pd.Series([c.tolist() for c in chunks], index=pd.Index(uniques, dtype=object), dtype=object)


def _exploded(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(row position, element) pairs of a list column, without empty or missing elements."""
    flat = values.reset_index(drop=True).explode()
    flat = flat[flat.notna()].astype(str).str.strip()
    flat = flat[flat != ""]
    return flat.index.to_numpy(), flat


def join_lists(values: pd.Series, sep: str = " ") -> pd.Series:
    """Each row's list of strings joined into one string ('' when empty or missing)."""
    rows, flat = _exploded(values)
    joined = group_lists(rows, flat).map(sep.join)
    return joined.reindex(range(len(values)), fill_value="").set_axis(values.index)


def concat_lists(*columns: pd.Series) -> pd.Series:
    """Row-wise concatenation of list (or scalar string) columns, order kept; NaN where a row has none."""
    pairs = [_exploded(c) for c in columns]
    rows = np.concatenate([r for r, _ in pairs])
    flat = pd.concat([f for _, f in pairs], ignore_index=True)
    return group_lists(rows, flat).reindex(range(len(columns[0]))).set_axis(columns[0].index)


def first_of(values: pd.Series, keys: Sequence[str] = ()) -> pd.Series:
    """The first non-empty element of each row's list (for dicts, the first of ``keys`` present); None if none."""
    exploded = values.reset_index(drop=True).explode()
    owner = exploded.index.to_numpy()
    flat = exploded.reset_index(drop=True).astype(object)
    if keys:
        picked = pd.Series(None, index=flat.index, dtype=object)
        dicts = flat.where(flat.map(lambda v: isinstance(v, dict)), None)
        for key in keys:
            picked = picked.where(picked.notna(), dicts.str.get(key))
        flat = picked
    flat.index = owner
    flat = flat[flat.notna()].astype(str).str.strip()
    flat = flat[flat != ""]
    first = flat.groupby(level=0).first().reindex(range(len(values)))
    return first.astype(object).where(first.notna(), None).set_axis(values.index)


def join_text(*columns: pd.Series, sep: str = "\n") -> pd.Series:
    """Row-wise join of text columns, skipping missing or blank parts; None when every part is empty."""
    frame = pd.concat([c.astype(object).where(c.notna(), "").astype(str).str.strip() for c in columns], axis=1)
    joined = frame.apply(lambda col: col.where(col == "", col + sep)).sum(axis=1).str.removesuffix(sep)
    return joined.astype(object).where(joined != "", None)


def price(values: pd.Series) -> pd.Series:
    """Prices such as ``$12.99``, ``$1,250.00`` or ``12.99`` as floats; ranges give their low end, the rest NaN."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        return pd.to_numeric(values, errors="coerce").astype(np.float64)
    number = values.astype(str).str.extract(r"^\s*\$?\s*(\d[\d,]*(?:\.\d+)?)", expand=False)
    return pd.to_numeric(number.str.replace(",", "", regex=False), errors="coerce").astype(np.float64)
