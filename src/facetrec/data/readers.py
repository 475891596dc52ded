"""Read tabular files (CSV/TSV, Parquet, JSON Lines; gzip or not) into pandas through DuckDB.

DuckDB does the parsing (multi-threaded, streaming gzip) so that a million-row file takes
seconds. CSV columns are read as text and parsed later by :mod:`facetrec.data.ingest`, where
each failure can be reported with its column and row; guessing types here would turn an id
like ``007`` into ``7``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from facetrec.errors import DataError

FORMATS = ("csv", "tsv", "parquet", "jsonl")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def detect_format(path: Path) -> str:
    """The format named by a file's suffix, ignoring a trailing ``.gz``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".gzip"):
        suffixes = suffixes[:-1]
    fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the format from the name; use one of "
            f"{', '.join(sorted(_SUFFIXES))} (optionally + .gz) or pass the format explicitly ({', '.join(FORMATS)})"
        )
    return fmt


def read_table(
    path: str | Path,
    fmt: str | None = None,
    *,
    delimiter: str | None = None,
    header: bool = True,
    names: list[str] | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read one file into a DataFrame whose row order is the file's row order.

    ``delimiter`` overrides the CSV separator (TSV defaults to a tab); ``header=False`` with
    ``names`` reads header-less files such as MovieLens' ``u.data``; ``encoding`` ("utf-8" or
    "latin-1") applies to CSV/TSV.
    """
    import duckdb

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise DataError(f"{path}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    con = duckdb.connect()
    try:
        if fmt in ("csv", "tsv"):
            sep = delimiter or ("\t" if fmt == "tsv" else ",")
            options = {"sep": sep, "header": header, "all_varchar": True, "encoding": encoding}
            if names:
                options["names"] = names
            if len(sep) > 1 or encoding.lower().replace("-", "") != "utf8":
                # DuckDB reads only UTF-8 without extensions, and rejects multi-character
                # separators such as MovieLens-1M's '::'.
                return _read_with_pandas(path, sep, header, names, encoding)
            relation = con.read_csv(str(path), **options)
        elif fmt == "parquet":
            relation = con.read_parquet(str(path))
        else:
            relation = con.read_json(str(path), format="newline_delimited")
        frame = relation.df()
    except duckdb.Error as exc:
        raise DataError(f"{path}: could not be read as {fmt}: {_first_line(exc)}") from None
    finally:
        con.close()
    if frame.empty:
        raise DataError(f"{path}: the file has a header but no data rows")
    return frame


def _read_with_pandas(path: Path, sep: str, header: bool, names: list[str] | None, encoding: str) -> pd.DataFrame:
    """Read as text with pandas' C parser; multi-character separators are split per line."""
    if len(sep) == 1:
        frame = pd.read_csv(
            path,
            sep=sep,
            header=0 if header else None,
            names=names,
            dtype=str,
            keep_default_na=False,
            encoding=encoding,
        )
        if frame.empty:
            raise DataError(f"{path}: the file has a header but no data rows")
        return frame
    lines = pd.read_csv(
        path, sep="\x01", header=None, names=["line"], dtype=str, encoding=encoding, quoting=3, keep_default_na=False
    )["line"]
    if header:
        names = names or str(lines.iloc[0]).split(sep)
        lines = lines.iloc[1:]
    parts = lines.str.split(sep, regex=False, expand=True)
    width = len(names) if names else parts.shape[1]
    if parts.shape[1] != width:
        raise DataError(f"{path}: expected {width} fields separated by {sep!r}, found {parts.shape[1]} on some lines")
    parts.columns = names or [f"column{i}" for i in range(width)]
    if parts.empty:
        raise DataError(f"{path}: the file has a header but no data rows")
    return parts.reset_index(drop=True)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
