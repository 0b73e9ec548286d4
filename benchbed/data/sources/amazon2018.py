"""Amazon reviews 2018 (Ni, Li & McAuley 2019): reviews (JSON lines or the ratings-only CSV) + meta.

Files: ``<Cat>_5.json.gz`` (5-core) or ``<Cat>.json.gz`` (all reviews) or ``<Cat>.csv`` (ratings only:
``item,user,rating,timestamp`` without a header), and ``meta_<Cat>.json.gz``; gzip or plain, streamed. Used
by ``amazon-book`` (CoLLM's recipe) and by RA-Rec's ``amazon-books-rarec`` / ``amazon-clothing-rarec``.

RA-Rec's preprocessing (seed 004 §4.1.1: "we discard invalid titles that are empty or exceed 200 characters
in length. Users with fewer than 3 interactions are removed ... we randomly sample 100,000 users from the
Clothing dataset and 80,000 users from the Books dataset") needs two steps the shared recipe has no key for,
so they are source options applied here, in the paper's order, before ``build_data``:

- ``max_title_chars``: a meta title longer than this is invalid, as an empty one is (its item is dropped
  with the recipe's ``require_title``);
- ``sample_users`` (+ ``sample_seed``): after the recipe's user filter (``min_user_count``, distinct
  items of titled products), a seeded uniform sample of that many users is kept (all if fewer).

Every drop is counted in the data's ``stats``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from benchbed.data.preprocess import build_data
from benchbed.data.schema import InteractionData
from benchbed.data.sources._amazon import _text, read_meta, read_reviews, time_range
from benchbed.data.sources._io import open_text
from benchbed.errors import DataError

if TYPE_CHECKING:
    from benchbed.data.spec import DatasetSpec


def categories(obj: dict[str, Any]) -> str:
    """2018 meta: ``category`` is one path, e.g. ["Books", "Literature & Fiction"]."""
    cats = obj.get("category") or []
    return " > ".join(_text(c) for c in cats) if isinstance(cats, list) else _text(cats)


def read_ratings_csv(path: Path) -> pd.DataFrame:
    """The ratings-only file (``item,user,rating,timestamp`` per line, no header) -> review columns."""
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    times: list[int] = []
    for n, line in open_text(path):
        parts = line.rstrip("\r\n").split(",")
        if len(parts) != 4:
            raise DataError(
                f"{path} line {n}: expected 4 comma-separated fields item,user,rating,timestamp, "
                f"got {len(parts)}"
            )
        try:
            rating, ts = float(parts[2]), int(float(parts[3]))
        except ValueError as exc:
            raise DataError(f"{path} line {n}: rating and timestamp must be numbers") from exc
        items.append(parts[0])
        users.append(parts[1])
        ratings.append(rating)
        times.append(ts)
    return pd.DataFrame(
        {
            "user_raw": users,
            "item_raw": items,
            "rating": np.asarray(ratings, dtype=np.float64),
            "timestamp": np.asarray(times, dtype=np.int64),
        }
    )


def _is_csv(path: Path) -> bool:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return name.endswith(".csv")


def _positive_option(spec: DatasetSpec, key: str) -> int | None:
    value = spec.options.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise DataError(f"dataset {spec.name!r}: option {key}={value!r}; expected a positive integer")
    return value


def sample_users(
    reviews: pd.DataFrame, min_count: int, n_users: int, seed: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Users with >= ``min_count`` distinct items, then a seeded uniform sample of ``n_users`` of them
    (sorted raw ids are drawn from, so the sample does not depend on the file's line order)."""
    per_user = reviews.groupby("user_raw")["item_raw"].nunique()
    eligible = np.sort(per_user.index[per_user >= min_count].to_numpy(dtype=str))
    stats = {"users_below_min_count": int(len(per_user) - len(eligible))}
    if len(eligible) > n_users:
        rng = np.random.default_rng(seed)
        eligible = np.sort(rng.choice(eligible, size=n_users, replace=False))
    stats["users_not_sampled"] = int(len(per_user) - stats["users_below_min_count"] - len(eligible))
    keep = reviews["user_raw"].isin(set(eligible.tolist())).to_numpy()
    return reviews[keep].reset_index(drop=True), stats


def load(spec: DatasetSpec, files: dict[str, Path]) -> InteractionData:
    """Catalog loader: ``reviews`` and ``meta`` -> ``InteractionData`` (options, then the recipe, applied)."""
    recipe = dict(spec.recipe)
    lo, hi = time_range(recipe)
    path = files["reviews"]
    if _is_csv(path):
        reviews = read_ratings_csv(path)
        ts = reviews["timestamp"].to_numpy()
        keep = (ts >= (lo if lo is not None else -(2**62))) & (ts < (hi if hi is not None else 2**62))
        outside = int((~keep).sum())
        reviews = reviews[keep].reset_index(drop=True)
    else:
        reviews, outside = read_reviews(path, json.loads, lo, hi)
    meta, skipped = read_meta(files["meta"], json.loads, set(reviews["item_raw"]), categories)
    recipe.pop("time_from", None), recipe.pop("time_to", None)
    stats: dict[str, Any] = {"outside_time_range": outside, **skipped}
    max_chars = _positive_option(spec, "max_title_chars")
    if max_chars is not None:
        long = meta["title"].str.len() > max_chars
        stats["meta_title_too_long"] = int(long.sum())
        meta = meta[~long].reset_index(drop=True)
    n_sample = _positive_option(spec, "sample_users")
    if n_sample is not None:
        if not recipe.get("require_title"):
            raise DataError(f"dataset {spec.name!r}: option sample_users needs the recipe's require_title")
        titled = set(meta["raw_id"])
        before = len(reviews)
        reviews = reviews[reviews["item_raw"].isin(titled).to_numpy()].reset_index(drop=True)
        stats["interactions_without_valid_title"] = before - len(reviews)
        seed = int(spec.options.get("sample_seed", 0))
        reviews, sampled = sample_users(reviews, int(recipe.get("min_user_count", 1)), n_sample, seed)
        stats.update(sampled)
    return build_data(spec.name, reviews, meta, None, recipe, domain=spec.domain, stats=stats)
