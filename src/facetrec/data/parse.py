"""Vectorised parsing of raw columns, with errors that name the file, column, row and fix.

Rows are counted from 1 over data rows (a CSV header is not a row), so "row 3" is the third
record of the file.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np
import pandas as pd

from facetrec.errors import DataError

TimeUnit = Literal["auto", "s", "ms", "us", "iso"]
TIME_UNITS: tuple[str, ...] = ("auto", "s", "ms", "us", "iso")
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000}
_NULL_TOKENS = ("", "nan", "NaN", "null", "NULL", "None")
"""Text that spreadsheet and pandas exports write for a missing value."""


def missing(values: pd.Series) -> np.ndarray:
    """True where a value is absent: null, NaN, blank text or a null token such as 'NaN'."""
    absent = values.isna().to_numpy(dtype=bool)
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        absent = absent | values.astype(str).str.strip().isin(_NULL_TOKENS).to_numpy(dtype=bool)
    return absent


def failure(where: str, column: str, bad: np.ndarray, values: pd.Series, what: str, fix: str) -> DataError:
    first = int(np.flatnonzero(bad)[0])
    return DataError(
        f"{where}: column {column!r} has {int(bad.sum())} {what} (first at row {first + 1}: "
        f"{values.iloc[first]!r}); {fix}"
    )


def ids(values: pd.Series, where: str, column: str) -> np.ndarray:
    """Ids as an object array of str; any empty id is an error (no row is dropped silently)."""
    absent = missing(values)
    if absent.any():
        raise failure(
            where, column, absent, values, "empty or missing ids", "every row needs an id: fill or remove those rows"
        )
    if pd.api.types.is_float_dtype(values.dtype) and (values % 1 == 0).all():
        values = values.astype(np.int64)  # 7.0 from a numeric reader is the id "7", not "7.0"
    return values.astype(str).str.strip().to_numpy(dtype=object)


def numbers(values: pd.Series, where: str, column: str, *, required: bool = False) -> np.ndarray:
    """Float64 values; empty cells become NaN unless ``required``, text that is no number is an error."""
    absent = missing(values)
    parsed = pd.to_numeric(values.where(~absent), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(parsed) & ~absent | np.isinf(parsed)
    if bad.any():
        raise failure(where, column, bad, values, "values that are not finite numbers", "fix or remove them")
    if required and absent.any():
        raise failure(where, column, absent, values, "empty values", "every row needs one")
    return parsed


def timestamps(
    values: pd.Series,
    where: str,
    column: str,
    unit: str = "auto",
    *,
    required: bool = True,
    date_format: str | None = None,
) -> np.ndarray:
    """Epoch seconds (int64) from epoch s/ms/us numbers or date strings (ISO 8601 and common forms).

    ``auto`` reads a column whose largest value exceeds 1e11 as milliseconds and 1e14 as
    microseconds (1e11 seconds is the year 5138); negative values (before 1970) do not count.
    Dates whose day and month order cannot be told (``03/04/2021``, ``03-04-21``) are refused
    unless ``date_format`` (a ``strftime`` pattern such as ``%d/%m/%Y``) says how to read them;
    with ``date_format`` every date in the column must match it (times without a zone are UTC).
    Missing values are an error when ``required``, else they become the int64 minimum for the
    caller to replace.
    """
    if unit not in TIME_UNITS:
        raise DataError(f"{where}: timestamp unit {unit!r} is not one of {', '.join(TIME_UNITS)}")
    absent = missing(values)
    if required and absent.any():
        raise failure(where, column, absent, values, "empty timestamps", "every interaction needs a time")
    present = values.where(~absent)
    numeric = pd.to_numeric(present, errors="coerce").to_numpy(dtype=np.float64)
    as_number = ~np.isnan(numeric)
    out = np.full(len(values), np.iinfo(np.int64).min, dtype=np.int64)
    mostly_numbers = as_number.sum() * 2 >= (~absent).sum()
    if date_format and unit not in _PER_SECOND and not pd.api.types.is_datetime64_any_dtype(values.dtype):
        dated = _with_format(present, absent, date_format, where)
        matched = ~dated.isna().to_numpy() & ~absent
        # A numeric column that the pattern does not read at all is epoch time (the pattern is for
        # another column, e.g. the catalogue's dates); anything else must match the pattern.
        if not (mostly_numbers and not matched.any()):
            bad = ~matched & ~absent
            if bad.any():
                raise failure(
                    where,
                    column,
                    bad,
                    values,
                    f"timestamps that do not match the date format {date_format!r}",
                    "fix them, or give the format they are written in (--date-format, e.g. %d/%m/%Y or %Y-%m-%d %H:%M)",
                )
            out[~absent] = _epoch_seconds(dated[~absent])
            return out
    # A column that is at least half numbers is epoch time; its few non-numbers are errors, not dates.
    if unit in _PER_SECOND or (unit == "auto" and mostly_numbers):
        bad = ~as_number & ~absent
        if bad.any():
            raise failure(
                where,
                column,
                bad,
                values,
                "unparseable timestamps (not epoch numbers)",
                "fix them, or use ISO 8601 dates throughout the column",
            )
        scale = _PER_SECOND.get(unit) or _auto_scale(numeric[as_number])
        out[as_number] = np.floor(numeric[as_number] / scale).astype(np.int64)
        return out
    text = present.astype(object).where(~absent)
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    retry = parsed.isna().to_numpy() & ~absent
    if retry.any():  # slower per-value parsing only for what ISO 8601 did not cover
        _refuse_ambiguous_dates(text, retry, where, column)
        parsed[retry] = _quietly(lambda: pd.to_datetime(text[retry], format="mixed", utc=True, errors="coerce"))
    bad = parsed.isna().to_numpy() & ~absent
    if bad.any():
        raise failure(
            where,
            column,
            bad,
            values,
            "unparseable timestamps",
            "use epoch seconds/milliseconds or ISO 8601 such as 2024-05-01T12:00:00Z",
        )
    out[~absent] = _epoch_seconds(parsed[~absent])
    return out


_DAY_MONTH = re.compile(r"^\s*(\d{1,2})([/.\-])(\d{1,2})\2(\d{2}|\d{4})(?:$|[\sT,])")
"""A date written day/month/year or month/day/year (03/04/2021, 3.4.21, 03-04-2021)."""


def _refuse_ambiguous_dates(text: pd.Series, candidates: np.ndarray, where: str, column: str) -> None:
    """Raise if any value is a date whose day and month order cannot be told from its text."""
    sample = text[candidates].astype(str)
    parts = sample.str.extract(_DAY_MONTH)
    found = parts[0].notna().to_numpy()
    if not found.any():
        return
    first, second = parts[0][found].astype(int), parts[2][found].astype(int)
    separator = parts[1][found].iloc[0]
    year = "%y" if parts[3][found].str.len().eq(2).all() else "%Y"
    day_first, month_first = (separator.join(("%d", "%m", year)), separator.join(("%m", "%d", year)))
    if (first > 12).any() and not (second > 12).any():
        hint = f"; some have a first number above 12, so probably --date-format '{day_first}'"
    elif (second > 12).any() and not (first > 12).any():
        hint = f"; some have a second number above 12, so probably --date-format '{month_first}'"
    else:
        hint = ""
    example = sample[found].iloc[0]
    row = int(np.flatnonzero(candidates)[np.flatnonzero(found)[0]]) + 1
    raise DataError(
        f"{where}: column {column!r} has {int(found.sum())} dates such as {example!r} (first at row {row}) "
        f"whose day and month order is ambiguous{hint}; say how to read them with --date-format "
        f"'{day_first}' (day first) or '{month_first}' (month first), or date_format in the TOML options table"
    )


def _with_format(present: pd.Series, absent: np.ndarray, date_format: str, where: str) -> pd.Series:
    text = present.astype(object).where(~absent).astype(str).str.strip()
    try:
        return pd.to_datetime(text, format=date_format, utc=True, errors="coerce")
    except ValueError as exc:
        raise DataError(
            f"{where}: date format {date_format!r} is not a valid strftime pattern ({exc}); use e.g. %d/%m/%Y"
        ) from None


def _epoch_seconds(parsed: pd.Series) -> np.ndarray:
    return (parsed.astype("datetime64[ns, UTC]").astype("int64") // 1_000_000_000).to_numpy()


def _quietly(parse: Callable[[], pd.Series]) -> pd.Series:
    """Run a pandas date parse without its inference warnings (the caller reports failures itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return parse()


def _auto_scale(numbers: np.ndarray) -> int:
    largest = numbers.max(initial=0)  # dates before 1970 are negative: only late dates tell the unit
    return 1_000_000 if largest > 1e14 else 1_000 if largest > 1e11 else 1


def text(values: pd.Series) -> np.ndarray:
    """Object array of str with missing values as ''."""
    return values.astype(object).where(~missing(values), "").astype(str).to_numpy(dtype=object)


def optional_text(values: pd.Series) -> np.ndarray:
    """Object array of str with missing values as None."""
    out = values.astype(object).to_numpy(dtype=object).copy()
    out[missing(values)] = None
    return out


def string_lists(values: pd.Series, separator: str) -> np.ndarray:
    """One tuple of str per row, from a delimited string ('a|b') or a list column (JSON/Parquet)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values.to_numpy(dtype=object)):
        if isinstance(value, list | tuple | np.ndarray):
            parts = [str(v).strip() for v in value if v is not None]
        elif value is None or (isinstance(value, float) and np.isnan(value)):
            parts = []
        else:
            parts = [p.strip() for p in str(value).split(separator)]
        out[i] = tuple(dict.fromkeys(p for p in parts if p))
    return out
