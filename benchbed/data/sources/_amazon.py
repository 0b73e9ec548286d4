"""What the two Amazon review dumps share: streamed review and meta files, parsed line by line.

Reviews give ``reviewerID, asin, overall, unixReviewTime`` (and, with ``keep_text``, ``reviewText`` as a
``review`` column: CLLM4Rec's content documents, paper §4.1.1); meta gives ``asin`` and text fields.
Files may be gzip or plain. A line that cannot be parsed, or lacks a needed field, is a DataError naming file
and line. Meta lines without a title are skipped and counted (the recipes' protocol), as are duplicate asins.
When the recipe keeps a time range, review lines outside it are dropped after reading only their time stamp
(a regex), which keeps multi-GB dumps tractable; their count is reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchbed.data.preprocess import _to_seconds
from benchbed.data.sources._io import open_text
from benchbed.errors import DataError

Parser = Callable[[str], Any]
REVIEW_FIELDS = ("reviewerID", "asin", "overall", "unixReviewTime")
DESCRIPTION_CHARS = 2000  # item descriptions are truncated: prompts never use more, parquet stays small
_TIME = re.compile(r"""["']unixReviewTime["']\s*:\s*(\d+)""")


def _parse(parse: Parser, line: str, path: Path, n: int) -> dict[str, Any]:
    try:
        obj = parse(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise DataError(f"{path} line {n}: not a valid record ({type(exc).__name__})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} line {n}: expected a record object, got {type(obj).__name__}")
    return obj


def read_reviews(
    path: Path, parse: Parser, time_from: int | None, time_to: int | None, *, keep_text: bool = False
) -> tuple[pd.DataFrame, int]:
    """Stream reviews -> (user_raw, item_raw, rating, timestamp[, review]), and how many fell outside the
    range. ``keep_text``: a ``review`` column with the whitespace-normalised ``reviewText`` ("" when a line
    has none: the 2014 5-core files have it on every line, a few as an empty string)."""
    users: list[str] = []
    texts: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    times: list[int] = []
    outside = 0
    ranged = time_from is not None or time_to is not None
    lo = time_from if time_from is not None else -(2**62)
    hi = time_to if time_to is not None else 2**62
    for n, line in open_text(path):
        if not line.strip():
            raise DataError(f"{path} line {n}: empty line; expected one review record per line")
        if ranged:
            m = _TIME.search(line)
            if m is not None and not lo <= int(m.group(1)) < hi:
                outside += 1
                continue
        obj = _parse(parse, line, path, n)
        missing = [f for f in REVIEW_FIELDS if f not in obj]
        if missing:
            raise DataError(f"{path} line {n}: missing field(s) {missing}; expected {list(REVIEW_FIELDS)}")
        try:
            rating, ts = float(obj["overall"]), int(obj["unixReviewTime"])
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path} line {n}: 'overall' and 'unixReviewTime' must be numbers") from exc
        if not lo <= ts < hi:
            outside += 1
            continue
        users.append(str(obj["reviewerID"]))
        items.append(str(obj["asin"]))
        ratings.append(rating)
        times.append(ts)
        if keep_text:
            texts.append(_text(obj.get("reviewText")))
    frame = pd.DataFrame(
        {
            "user_raw": users,
            "item_raw": items,
            "rating": np.asarray(ratings, dtype=np.float64),
            "timestamp": np.asarray(times, dtype=np.int64),
        }
    )
    if keep_text:
        frame["review"] = pd.Series(texts, dtype=object)
    return frame, outside


def _text(value: Any, limit: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = " | ".join(_text(v) for v in value if _text(v))
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text[:limit] if limit else text


def read_meta(
    path: Path, parse: Parser, wanted: set[str], categories: Callable[[Any], str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Stream meta -> ``raw_id, title, brand, categories, description`` for the asins in ``wanted``."""
    rows: dict[str, tuple[str, str, str, str]] = {}
    skipped = {"meta_without_title": 0, "meta_duplicate_asin": 0}
    for n, line in open_text(path):
        if not line.strip():
            raise DataError(f"{path} line {n}: empty line; expected one product record per line")
        obj = _parse(parse, line, path, n)
        if "asin" not in obj:
            raise DataError(f"{path} line {n}: missing field 'asin'")
        asin = str(obj["asin"])
        if asin not in wanted:
            continue
        if asin in rows:
            skipped["meta_duplicate_asin"] += 1
            continue
        title = _text(obj.get("title"))
        if not title:
            skipped["meta_without_title"] += 1
            continue
        rows[asin] = (
            title,
            _text(obj.get("brand")),
            categories(obj),
            _text(obj.get("description"), DESCRIPTION_CHARS),
        )
    frame = pd.DataFrame.from_dict(
        rows, orient="index", columns=["title", "brand", "categories", "description"]
    ).rename_axis("raw_id")
    return frame.reset_index(), skipped


def time_range(recipe: dict[str, Any]) -> tuple[int | None, int | None]:
    lo = _to_seconds(recipe["time_from"], "time_from") if recipe.get("time_from") else None
    hi = _to_seconds(recipe["time_to"], "time_to") if recipe.get("time_to") else None
    return lo, hi
