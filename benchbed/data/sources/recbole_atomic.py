"""RecBole atomic files (``<name>.inter``, ``.item``, ``.user``): tab separated, typed headers ``field:type``.

Used for ``ml-100k`` (read in place from RecBole's installed wheel) and for any RecBole dataset a user puts
under the data dir, so benchbed and RecBole baselines read the very same files.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from benchbed.data.preprocess import build_data
from benchbed.data.schema import InteractionData
from benchbed.data.sources._io import to_float, to_int_timestamps
from benchbed.errors import DataError

if TYPE_CHECKING:
    from benchbed.data.spec import DatasetSpec

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
INTER_FIELDS = {
    "user_id": "user",
    "item_id": "item",
    "rating": "rating",
    "timestamp": "timestamp",
    "label": "label",
}
TITLE_CANDIDATES = ("title", "movie_title", "item_name", "name", "book_title")


def read_atomic(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read one atomic file as strings; columns are the field names without their ``:type`` suffix."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        frame = pd.read_csv(
            path,
            sep="\t",
            dtype=str,
            na_filter=False,
            quoting=csv.QUOTE_NONE,
            skip_blank_lines=False,
            encoding="utf-8",
        )
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            raise DataError(
                f"{path} line {m.group(2)}: expected {m.group(1)} tab-separated fields, saw {m.group(3)}"
            ) from exc
        raise DataError(f"{path}: not a tab-separated RecBole atomic file ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(
            f"{path}: empty file; expected a header like 'user_id:token<TAB>item_id:token'"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 text") from exc
    # trailing blank lines (an editor's final empty line) are not rows; RecBole's own reader skips them too
    blank = (frame == "").all(axis=1).to_numpy()
    end = len(frame)
    while end and blank[end - 1]:
        end -= 1
    frame = frame.iloc[:end]
    names = []
    for col in frame.columns:
        field, sep, kind = str(col).strip().partition(":")
        if not sep or kind not in ATOMIC_TYPES:
            raise DataError(
                f"{path} line 1: header field {str(col)[:60]!r} must look like 'name:type' with type one of "
                f"{list(ATOMIC_TYPES)} (is the file tab separated?)"
            )
        names.append(field)
    if len(set(names)) != len(names):
        raise DataError(f"{path} line 1: duplicate header fields {names}")
    frame.columns = names
    missing = [f for f in required if f not in names]
    if missing:
        raise DataError(f"{path} line 1: missing field(s) {missing}; header has {names}")
    return frame


def _check_nonempty(frame: pd.DataFrame, path: Path, fields: tuple[str, ...]) -> None:
    for field in fields:
        empty = (frame[field].str.strip() == "").to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise DataError(f"{path} line {i + 2}: field {field!r} is empty (malformed or short line)")


def read_inter(path: Path, *, strict_columns: bool = False) -> tuple[pd.DataFrame, dict[str, Any]]:
    """An ``.inter`` file -> columns user_raw, item_raw, rating, timestamp (+ label when the file has one).

    Missing ``timestamp`` -> the row order (documented: histories then follow file order). Unknown columns are
    an error with ``strict_columns`` (bring-your-own splits, where a typo would silently drop a label), else
    ignored and reported in the stats.
    """
    raw = read_atomic(path, required=("user_id", "item_id"))
    stats: dict[str, Any] = {}
    unknown = [c for c in raw.columns if c not in INTER_FIELDS]
    if unknown and strict_columns:
        raise DataError(f"{path} line 1: unknown column(s) {unknown}; expected some of {list(INTER_FIELDS)}")
    if unknown:
        stats["ignored_columns"] = unknown
    _check_nonempty(raw, path, tuple(c for c in raw.columns if c in INTER_FIELDS))
    out = pd.DataFrame({"user_raw": raw["user_id"].str.strip(), "item_raw": raw["item_id"].str.strip()})
    out["rating"] = to_float(raw["rating"], path, "rating") if "rating" in raw else np.nan
    if "timestamp" in raw:
        out["timestamp"] = to_int_timestamps(raw["timestamp"], path, "timestamp")
    else:
        out["timestamp"] = np.arange(len(raw), dtype=np.int64)
        stats["timestamp"] = "row order (file has no timestamp field)"
    if "label" in raw:
        label = to_float(raw["label"], path, "label")
        bad = ~np.isin(label, (0.0, 1.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path} line {i + 2}: field 'label' must be 0 or 1, got {raw['label'].iloc[i]!r}"
            )
        out["label"] = label.astype(np.int8)
    return out, stats


def read_features(path: Path, id_field: str, rename: dict[str, str] | None = None) -> pd.DataFrame:
    """An ``.item``/``.user`` file -> ``raw_id`` plus its other fields as text (sequences space-joined)."""
    raw = read_atomic(path, required=(id_field,))
    _check_nonempty(raw, path, (id_field,))
    raw = raw.rename(columns={id_field: "raw_id", **(rename or {})})
    raw["raw_id"] = raw["raw_id"].str.strip()
    dup = raw["raw_id"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{path} line {i + 2}: duplicate {id_field} {raw['raw_id'].iloc[i]!r}")
    if "title" not in raw.columns:
        for cand in TITLE_CANDIDATES:
            if cand in raw.columns:
                raw = raw.rename(columns={cand: "title"})
                break
    return raw.reset_index(drop=True)


def load(spec: DatasetSpec, files: dict[str, Path]) -> InteractionData:
    """Catalog loader: atomic files by role (``inter``, optional ``item``/``user``) -> ``InteractionData``."""
    inter, stats = read_inter(files["inter"])
    items = (
        read_features(files["item"], "item_id", spec.recipe.get("item_rename")) if "item" in files else None
    )
    users = read_features(files["user"], "user_id") if "user" in files else None
    return build_data(spec.name, inter, items, users, dict(spec.recipe), domain=spec.domain, stats=stats)
