"""Shared reading helpers for the raw-format sources: line streaming with line numbers, typed errors.

Every source reports problems as ``DataError("<file> line <n>: <field>: <what was expected>")`` so that a
malformed raw file is never skipped silently and the user knows exactly where to look.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from benchbed.errors import DataError


def open_text(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` of a plain or gzip text file, streaming; corrupt gzip -> DataError."""
    path = Path(path)
    is_gzip = path.suffix == ".gz"
    if not is_gzip:
        with open(path, "rb") as probe:
            is_gzip = probe.read(2) == b"\x1f\x8b"
    n = 0
    try:
        if is_gzip:
            with gzip.open(path, "rt", encoding=encoding, errors="strict") as fh:
                for n, line in enumerate(fh, start=1):
                    yield n, line
        else:
            with open(path, encoding=encoding, errors="strict") as fh:
                for n, line in enumerate(fh, start=1):
                    yield n, line
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip after line {n} ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} line {n + 1}: not valid {encoding} text") from exc


def to_int_timestamps(values: pd.Series, path: Path, field: str, first_line: int = 2) -> np.ndarray:
    """Numeric (int or float) seconds -> int64; a bad value names its line (row i is line i+first_line)."""
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path} line {i + first_line}: field {field!r} must be numeric seconds, got {values.iloc[i]!r}"
        )
    seconds = numeric.to_numpy(dtype=np.float64)
    # no clock reads this (seconds, ms and microseconds since 1970 all fit), and it overflows int64 later
    out_of_range = np.abs(seconds) > MAX_TIMESTAMP
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range)[0])
        raise DataError(
            f"{path} line {i + first_line}: field {field!r} = {values.iloc[i]!r} is out of range "
            f"(expected a Unix time, at most {MAX_TIMESTAMP:.0e} in absolute value)"
        )
    return np.asarray(seconds, dtype=np.int64)


MAX_TIMESTAMP = 2**53  # floats are exact integers up to here; microseconds since 1970 are ~1.8e15


def to_float(values: pd.Series, path: Path, field: str, first_line: int = 2) -> np.ndarray:
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna().to_numpy() & values.notna().to_numpy() & (values.astype(str) != "").to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path} line {i + first_line}: field {field!r} must be a number, got {values.iloc[i]!r}"
        )
    return numeric.to_numpy(dtype=np.float64)
