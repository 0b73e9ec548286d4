"""MovieLens raw files (ml-1m): ``ratings.dat``, ``movies.dat``, ``users.dat``; ``::``-separated, latin-1.

The official archive's format, so a user can drop the unzipped folder under the data dir as is.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from benchbed.data.preprocess import build_data
from benchbed.data.schema import InteractionData
from benchbed.data.sources._io import to_float, to_int_timestamps
from benchbed.errors import DataError

if TYPE_CHECKING:
    from benchbed.data.spec import DatasetSpec

# C0 and C1 control characters: latin-1 decodes any byte, so a UTF-8 or damaged file shows up as these
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
RATINGS = ("user_id", "item_id", "rating", "timestamp")
MOVIES = ("item_id", "title", "genres")
USERS = ("user_id", "gender", "age", "occupation", "zip_code")


def read_dat(path: Path, columns: tuple[str, ...], *, strict: bool = False) -> pd.DataFrame:
    """A ``::``-separated file as strings; a wrong delimiter or field count names the file and line.

    Trailing blank lines are accepted. ``strict`` (the small movies/users files, where a short line would
    silently give empty genres) also checks every line's field count and refuses control characters, which
    is how a re-encoded or damaged file shows once latin-1 has decoded it; ratings' short lines are caught
    by their empty timestamp, at pandas' speed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    if not text.strip():
        raise DataError(f"{path}: empty file; expected lines of {len(columns)} '::'-separated fields")
    first = text.split("\n", 1)[0]
    if "::" not in first or "\t" in text:
        raise DataError(
            f"{path} line 1: expected {len(columns)} '::'-separated fields ({'::'.join(columns)})"
        )
    text = text.rstrip("\r\n\t ") + "\n"  # trailing blank lines
    if strict:
        _check_lines(path, text, columns)
    try:
        frame = pd.read_csv(
            io.StringIO(text.replace("::", "\t")),
            sep="\t",
            header=None,
            names=list(columns),
            dtype=str,
            na_filter=False,
            quoting=csv.QUOTE_NONE,
            skip_blank_lines=False,
        )
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        where = f" line {m.group(2)}" if m else ""
        raise DataError(f"{path}{where}: expected {len(columns)} '::'-separated fields ({exc})") from exc
    if text.endswith("\n") and len(frame) and (frame.iloc[-1] == "").all():
        frame = frame.iloc[:-1]  # pandas reads the final newline of some files as an empty row
    for col in columns[:2]:
        empty = (frame[col].str.strip() == "").to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise DataError(f"{path} line {i + 1}: field {col!r} is empty (malformed or short line)")
    return frame


def _check_lines(path: Path, text: str, columns: tuple[str, ...]) -> None:
    for n, line in enumerate(text.split("\n")[:-1], start=1):  # not splitlines: \x85 is a line break there
        count = line.count("::") + 1
        if count != len(columns):
            blank = " (a blank line)" if not line.strip() else ""
            raise DataError(
                f"{path} line {n}: expected {len(columns)} '::'-separated fields ({'::'.join(columns)}), "
                f"got {count}{blank}"
            )
        bad = _CONTROL.search(line)
        if bad:
            raise DataError(
                f"{path} line {n}: control character {bad.group()!r} in the text; not the latin-1 MovieLens "
                "format (re-encoded or damaged?)"
            )


def read_ratings(path: Path) -> pd.DataFrame:
    raw = read_dat(path, RATINGS)
    short = (raw["timestamp"] == "").to_numpy()
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise DataError(
            f"{path} line {i + 1}: expected 4 '::'-separated fields (user::movie::rating::timestamp)"
        )
    return pd.DataFrame(
        {
            "user_raw": raw["user_id"].str.strip(),
            "item_raw": raw["item_id"].str.strip(),
            "rating": to_float(raw["rating"], path, "rating", first_line=1),
            "timestamp": to_int_timestamps(raw["timestamp"], path, "timestamp", first_line=1),
        }
    )


def _unique_ids(frame: pd.DataFrame, path: Path, field: str) -> pd.DataFrame:
    dup = frame["raw_id"].duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DataError(f"{path} line {i + 1}: duplicate {field} {frame['raw_id'].iloc[i]!r}")
    return frame


def read_movies(path: Path) -> pd.DataFrame:
    raw = read_dat(path, MOVIES, strict=True).rename(columns={"item_id": "raw_id"})
    raw["raw_id"] = raw["raw_id"].str.strip()
    raw["year"] = raw["title"].str.extract(r"\((\d{4})\)\s*$", expand=False).fillna("")
    raw["genres"] = raw["genres"].str.replace("|", ", ", regex=False)
    return _unique_ids(raw, path, "MovieID")


def read_users(path: Path) -> pd.DataFrame:
    raw = read_dat(path, USERS, strict=True).rename(columns={"user_id": "raw_id"})
    raw["raw_id"] = raw["raw_id"].str.strip()
    return _unique_ids(raw, path, "UserID")


def load(spec: DatasetSpec, files: dict[str, Path]) -> InteractionData:
    """Catalog loader: ``ratings``, ``movies`` and optional ``users`` files -> ``InteractionData``."""
    ratings = read_ratings(files["ratings"])
    movies = read_movies(files["movies"])
    users = read_users(files["users"]) if "users" in files else None
    return build_data(spec.name, ratings, movies, users, dict(spec.recipe), domain=spec.domain)
