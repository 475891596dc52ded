"""Precomputed item vectors (image, audio, any modality) read from a file and attached to a dataset.

Models read them from ``dataset.catalog.vectors[NAME]``: float32 [n_items, d], row i for item i,
an all-zero row meaning "this item has none". Two file types:

- ``.npy``: a 2-d array of real numbers, one row per item, matched by **position**. When every
  item id of the dataset is a plain non-negative integer (``0``, ``17``; not ``007``), row i holds
  the item whose id is ``i``: research datasets number their items by feature row, and a k-core
  filter may drop items without shifting the rows. Every item then needs a row; rows of ids that
  are not in the dataset are ignored and counted. Otherwise rows follow the dataset's item order
  (``dataset.catalog.items``, the order of ``items.parquet``) and there must be exactly one row
  per item.
- ``.parquet``: an ``item_id`` column and one list column of numbers (the one called NAME when
  there are several), matched by **id**. Ids that the dataset lacks are ignored, items without a
  row get a zero row (missing), a null list means missing too; all three are counted in notes.

NaN or infinite values, a non-numeric type, zero dimensions, lists of different lengths and
repeated ids are errors that name the file and the first item concerned.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facetrec.data import parse
from facetrec.data.dataset import Dataset
from facetrec.errors import ConfigError, DataError
from facetrec.ids import Vocabulary

SUFFIXES = (".npy", ".parquet")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_ROW_NUMBER = r"0|[1-9][0-9]{0,17}"  # an id that can be a row number (int64-safe, no leading zero)
_NPY_MAGIC = b"\x93NUMPY"
_PICKLE_MAGIC = b"\x80"  # the PROTO opcode that starts every pickle since protocol 2


def check_name(name: str) -> None:
    """A ConfigError unless ``name`` can name a vector set (it becomes the column ``vector.NAME``)."""
    if not _NAME.fullmatch(name):
        raise ConfigError(f"item vectors name {name!r}: use letters, digits, '_' or '-', e.g. image or audio_v2")


def read_item_vectors(path: str | Path, items: Vocabulary, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """The vectors in ``path`` aligned to ``items`` (float32 [len(items), d]) and notes on what was
    ignored or missing. The module docstring gives the alignment rules."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{path}: item vectors must be a .npy file (one row per item) or a .parquet file (item_id and a "
            f"list column); got {suffix or 'no suffix'!r}"
        )
    notes: list[str] = []
    matrix = _from_npy(path, items, notes) if suffix == ".npy" else _from_parquet(path, items, name, notes)
    if matrix.shape[1] == 0:
        raise DataError(f"{path}: the vectors have 0 dimensions; each item needs at least one number")
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        first = items.ids[int(np.argmax(bad))]
        raise DataError(
            f"{path}: {int(bad.sum()):,} items have NaN or infinite values (or values beyond float32's range), "
            f"first item {first!r}; fix or zero those rows (a zero row means 'no vector')"
        )
    covered = int(matrix.any(axis=1).sum())
    notes.append(
        f"{path.name}: item vectors {name!r}, {matrix.shape[1]} dims: {covered:,} of {len(items):,} items have one"
        + (f", {len(items) - covered:,} are missing (all-zero rows)" if covered < len(items) else "")
    )
    return matrix, tuple(notes)


def attach_item_vectors(dataset: Dataset, files: Mapping[str, str | Path]) -> Dataset:
    """``dataset`` with each ``{name: path}`` read into ``catalog.vectors[name]``, its notes added and
    the file's name kept in ``extras["item_vectors"]``. A name the catalogue already has is an error."""
    for name, path in files.items():
        check_name(name)
        if name in dataset.catalog.vectors:
            raise ConfigError(f"item vectors {name!r}: dataset {dataset.name!r} already has them; choose another name")
        matrix, found = read_item_vectors(path, dataset.catalog.items, name)
        dataset = with_item_vectors(dataset, name, matrix, found, Path(path).name)
    return dataset


def with_item_vectors(dataset: Dataset, name: str, matrix: np.ndarray, notes: Sequence[str], source: str) -> Dataset:
    """``dataset`` with ``matrix`` as its vector set ``name`` (replacing one of that name), ``notes``
    added and ``source`` (a file, an encoder) kept in ``extras["item_vectors"]``: the one way a
    vector set enters a dataset, whether imported or encoded."""
    sources = {**dataset.extras.get("item_vectors", {}), name: source}
    return dataclasses.replace(
        dataset,
        catalog=dataclasses.replace(dataset.catalog, vectors={**dataset.catalog.vectors, name: matrix}),
        notes=(*dataset.notes, *notes),
        extras={**dataset.extras, "item_vectors": sources},
    )


def load_npy(path: Path) -> np.ndarray:
    """The 2-d array of real numbers in a .npy file, never unpickling anything (that can run code)."""
    pickled = DataError(
        f"{path}: holds pickled Python objects, which are never loaded (unpickling can run code); save a "
        "numeric array instead, e.g. np.save(path, vectors.astype(np.float32))"
    )
    with path.open("rb") as handle:
        magic = handle.read(len(_NPY_MAGIC))
    if magic.startswith(_PICKLE_MAGIC):
        raise pickled
    if magic != _NPY_MAGIC:
        raise DataError(f"{path}: not a .npy file (it does not start with numpy's header); save it with np.save")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise pickled from None
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    if array.dtype.kind not in "iuf":
        raise DataError(f"{path}: expected real numbers (float or int), got dtype {array.dtype}")
    if array.ndim != 2:
        raise DataError(f"{path}: expected a 2-d array [items, dims], got shape {array.shape}")
    return array


def _from_npy(path: Path, items: Vocabulary, notes: list[str]) -> np.ndarray:
    array = load_npy(path)
    rows, ids = len(array), items.ids
    by_id = bool(pd.Series(ids, dtype=object).str.fullmatch(_ROW_NUMBER).all())
    if by_id:
        position = ids.astype(np.int64)
        beyond = position >= rows
        if beyond.any():
            first = ids[int(np.argmax(beyond))]
            raise DataError(
                f"{path}: {int(beyond.sum()):,} items have no row: item ids are numbers, so row i holds item 'i', "
                f"and item {first!r} needs row {first} but the file has {rows:,} rows. If row 0 is not item '0', "
                "write a .parquet file with an item_id column instead"
            )
        unused = rows - len(np.unique(position))
        if unused:
            notes.append(f"{path.name}: {unused:,} rows are for item ids the dataset lacks; they are ignored")
        array = array[position]
    elif rows != len(ids):
        raise DataError(
            f"{path}: {rows:,} rows for {len(ids):,} items; item ids are not all numbers, so row i must hold the "
            "dataset's i-th item (its catalogue order) and the counts must match. To match rows by id, "
            "write a .parquet file with an item_id column instead"
        )
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(array, dtype=np.float32)


def _from_parquet(path: Path, items: Vocabulary, name: str, notes: list[str]) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    found = ", ".join(table.column_names)
    if "item_id" not in table.column_names:
        raise DataError(f"{path}: no 'item_id' column (columns found: {found}); vector files need item ids")
    lists = [
        f.name
        for f in table.schema
        if pa.types.is_list(f.type) or pa.types.is_large_list(f.type) or pa.types.is_fixed_size_list(f.type)
    ]
    if name in lists or len(lists) == 1:
        column_name = name if name in lists else lists[0]
    else:
        which = f"several ({', '.join(lists)}) and none is called {name!r}" if lists else "none"
        raise DataError(f"{path}: expected one list column of numbers beside item_id, found {which} (columns: {found})")
    column = table.column(column_name).combine_chunks()
    value_type = column.type.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)):
        raise DataError(f"{path}: column {column_name!r} holds lists of {value_type}, not numbers")
    ids = parse.ids(table.column("item_id").to_pandas(), str(path), "item_id")
    repeated = pd.Index(ids).duplicated()
    if repeated.any():
        raise DataError(f"{path}: item {ids[int(np.argmax(repeated))]!r} has more than one row in column 'item_id'")
    present = ~column.is_null().to_numpy(zero_copy_only=False)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)[present].astype(np.int64)
    if not len(lengths) or not lengths.any():
        raise DataError(f"{path}: column {column_name!r} holds no numbers (every list is empty or null)")
    dim = int(lengths[0])
    if (lengths != dim).any():
        at = int(np.argmax(lengths != dim))
        raise DataError(
            f"{path}: column {column_name!r}: item {ids[present][at]!r} has {int(lengths[at])} numbers but "
            f"item {ids[present][0]!r} has {dim}; every vector needs the same length"
        )
    with np.errstate(over="ignore"):
        values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
    position = items.lookup(ids)
    known = position >= 0
    if not known.any():
        raise DataError(
            f"{path}: none of its {len(ids):,} item ids is in the dataset (file: {ids[0]!r}, ...; dataset: "
            f"{items.ids[0]!r}, ...); are they the same kind of id?"
        )
    if not known.all():
        notes.append(
            f"{path.name}: {int((~known).sum()):,} rows are for items the dataset lacks "
            f"(e.g. {ids[int(np.argmin(known))]!r}); they are ignored"
        )
    null = int((known & ~present).sum())
    if null:
        notes.append(f"{path.name}: {null:,} items have a null vector; they count as missing")
    absent = len(items) - int(known.sum())
    if absent:
        notes.append(f"{path.name}: {absent:,} items have no row; their vectors are zero (missing)")
    matrix = np.zeros((len(items), dim), np.float32)
    used = known[present]
    matrix[position[present][used]] = values[used]
    return matrix
