"""Read tabular files (CSV/TSV, Parquet, JSON Lines; gzip or not) into pandas through DuckDB.

DuckDB does the parsing (multi-threaded, streaming gzip) so that a million-row file takes
seconds. CSV columns are read as text and parsed later by :mod:`facetrec.data.ingest`, where
each failure can be reported with its column and row; guessing types here would turn an id
like ``007`` into ``7``.
"""

from __future__ import annotations

import codecs
import gzip
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
    ``names`` reads header-less files such as MovieLens' ``u.data``; ``encoding`` (e.g. "utf-8",
    "latin-1", "cp1252") applies to CSV/TSV/JSONL. Bytes that are not valid in ``encoding`` are
    an error naming the byte offset and line, never a silent replacement.
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
    try:
        encoding = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"{path}: unknown text encoding {encoding!r}; use e.g. utf-8, latin-1 or cp1252") from None
    utf8 = encoding == "utf-8"
    con = duckdb.connect()
    try:
        if fmt in ("csv", "tsv"):
            sep = delimiter or ("\t" if fmt == "tsv" else ",")
            options = {"sep": sep, "header": header, "all_varchar": True, "encoding": encoding}
            if names:
                options["names"] = names
            if len(sep) > 1 or not utf8:
                # DuckDB reads only UTF-8 without extensions, and rejects multi-character
                # separators such as MovieLens-1M's '::'.
                return _read_with_pandas(path, sep, header, names, encoding)
            relation = con.read_csv(str(path), **options)
        elif fmt == "parquet":
            relation = con.read_parquet(str(path))
        elif not utf8:
            return _read_jsonl_with_pandas(path, encoding)
        else:
            relation = con.read_json(str(path), format="newline_delimited")
        frame = relation.df()
    except duckdb.Error as exc:
        if fmt != "parquet":
            _check_encoding(path, encoding)
        raise DataError(f"{path}: could not be read as {fmt}: {_first_line(exc)}") from None
    except UnicodeDecodeError:
        _check_encoding(path, encoding)
        raise
    finally:
        con.close()
    if frame.empty:
        raise DataError(f"{path}: the file has a header but no data rows")
    return frame


def _read_with_pandas(path: Path, sep: str, header: bool, names: list[str] | None, encoding: str) -> pd.DataFrame:
    """Read as text with pandas' C parser; multi-character separators are split per line."""
    try:
        return _pandas_csv(path, sep, header, names, encoding)
    except UnicodeDecodeError:
        _check_encoding(path, encoding)
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: could not be read as delimited text: {_first_line(exc)}") from None


def _pandas_csv(path: Path, sep: str, header: bool, names: list[str] | None, encoding: str) -> pd.DataFrame:
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


def _read_jsonl_with_pandas(path: Path, encoding: str) -> pd.DataFrame:
    """JSON Lines in an encoding DuckDB cannot read (it reads UTF-8 only)."""
    try:
        frame = pd.read_json(path, lines=True, encoding=encoding, dtype=False)
    except ValueError as exc:
        raise DataError(f"{path}: could not be read as jsonl: {_first_line(exc)}") from None
    if frame.empty:
        raise DataError(f"{path}: the file has no records")
    return frame


def _check_encoding(path: Path, encoding: str) -> None:
    """Raise a DataError locating the first byte that is not valid ``encoding`` text, if any."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    opener = gzip.open if path.suffix.lower() in (".gz", ".gzip") else open
    offset, line = 0, 1
    try:
        with opener(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    bad = chunk[exc.start : exc.start + 1]
                    line += chunk[: exc.start].count(b"\n")
                    start = max(chunk.rfind(b"\n", 0, exc.start) + 1, exc.start - 40)
                    end = chunk.find(b"\n", exc.start)
                    end = min(exc.start + 20, len(chunk) if end < 0 else end)
                    context = chunk[start:end].decode(encoding, errors="replace").strip()
                    other = "latin-1" if encoding == "utf-8" else "utf-8"
                    where = "decompressed " if opener is gzip.open else ""
                    raise DataError(
                        f"{path}: not valid {encoding} text: byte 0x{bad.hex()} at {where}byte offset "
                        f"{offset + exc.start:,} (line {line}: {context!r}); give the file's encoding, e.g. "
                        f'--encoding {other} (encoding = "{other}" in the TOML options table)'
                    ) from None
                line += chunk.count(b"\n")
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(
            f"{path}: not valid {encoding} text: the file ends inside a multi-byte character; "
            f"give the file's encoding, e.g. --encoding latin-1"
        ) from None
    except (OSError, EOFError):
        return  # not a readable (gzip) stream: the caller's own error says more


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
