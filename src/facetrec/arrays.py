"""Read-only memory maps of a safetensors file's tensors.

Every worker process of ``facetrec serve --workers N`` loads the same bundle. Reading its arrays
into each process's heap costs N copies; mapping the file instead lets the operating system
keep one copy in its page cache, shared by every process that maps it. The maps are read-only
(``mode="r"``), so code that reads loaded state must never write to it in place.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
length, a JSON header ``{name: {"dtype", "shape", "data_offsets": [begin, end]}}`` (offsets
relative to the end of the header; an optional ``__metadata__`` entry), then the data.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from facetrec.errors import DataError

DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
"""safetensors dtype names numpy can map (bfloat16 and the float8 kinds have no numpy dtype)."""

MAX_HEADER = 100_000_000
"""safetensors' own limit on the JSON header (bytes): a larger length means a corrupt file."""


def map_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Each tensor of the safetensors file at ``path`` as a read-only ``np.memmap`` (zero-size
    tensors as empty arrays, which cannot be mapped). A truncated or malformed file raises
    :class:`DataError` naming the file and what is wrong, before anything is mapped."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise DataError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER, size - 8):
            raise DataError(f"{path}: header length {length} exceeds the file ({size} bytes); truncated or corrupt")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: the safetensors header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise DataError(f"{path}: the safetensors header is not a JSON object")
    start = 8 + length
    out: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = _spec(path, name, spec)
        if start + end > size:
            raise DataError(
                f"{path}: tensor {name!r} ends at byte {start + end}, past the file's end ({size}); truncated"
            )
        if end - begin != int(np.prod(shape)) * dtype.itemsize:
            raise DataError(f"{path}: tensor {name!r} holds {end - begin} bytes, not {dtype} {tuple(shape)}")
        if end == begin:
            out[name] = np.zeros(shape, dtype)
        else:
            out[name] = np.memmap(path, dtype=dtype, mode="r", offset=start + begin, shape=tuple(shape))
    return out


def _spec(path: Path, name: str, spec: object) -> tuple[np.dtype, list[int], tuple[int, int]]:
    """(dtype, shape, (begin, end)) of one header entry, or a DataError naming what is wrong."""
    try:
        kind, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]  # type: ignore[index]
        begin, end = (int(v) for v in offsets)
        shape = [int(s) for s in shape]
    except (TypeError, KeyError, ValueError):
        raise DataError(f"{path}: tensor {name!r} lacks a valid dtype, shape or data_offsets") from None
    if kind not in DTYPES:
        raise DataError(f"{path}: tensor {name!r} has dtype {kind!r}; one of {', '.join(DTYPES)} can be mapped")
    if min(shape, default=0) < 0 or not 0 <= begin <= end:
        raise DataError(f"{path}: tensor {name!r} has a negative shape or offsets {[begin, end]}")
    return np.dtype(DTYPES[kind]).newbyteorder("<"), shape, (begin, end)
