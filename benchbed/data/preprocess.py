"""Raw frames -> ``InteractionData``: labels, time range, de-duplication, count filters, dense ids.

One function for every source, so that a recipe's steps mean the same thing on every dataset. Recipe keys
(all optional):

- ``label_rule``: ``"rating>3"``, ``"rating>=4"`` ... -> label 0/1; None keeps a label column the source
  read, else the data is implicit (label -1).
- ``time_from`` / ``time_to``: ISO dates (UTC), keep ``time_from <= t < time_to``.
- ``require_title``: drop interactions whose item has no title in the item table (CoLLM's inner join).
- ``dedupe``: ``"last"`` (default) keeps a user's latest interaction with an item, ``"none"`` keeps all.
- ``positives_only``: drop the label-0 rows after de-duplication, before the count filters (CLLM4Rec: ratings
  > 3 kept, then the 5-core "after binarisation", paper §4.1.1).
- ``min_user_count`` / ``min_item_count`` with ``kcore``: ``"once"`` (one simultaneous pass, CoLLM's ``> 20``
  filter as ``min = 21``) or ``"iterative"`` (repeat until stable, OpenP5's 5-core).
Counts of everything removed are reported in ``stats`` (nothing is dropped silently). The output rows are
sorted by timestamp, same-second rows in the raw file's order (RecBole's and OpenP5's order).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchbed.data.schema import InteractionData
from benchbed.errors import ConfigError, DataError

RECIPE_KEYS = (
    "label_rule",
    "time_from",
    "time_to",
    "require_title",
    "dedupe",
    "min_user_count",
    "min_item_count",
    "kcore",
    "item_rename",
    "positives_only",
)
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}


def apply_label_rule(rating: pd.Series, rule: str) -> np.ndarray:
    """``"rating>3"`` -> int8 0/1 labels; a rating-less row cannot be labeled (DataError)."""
    m = re.fullmatch(r"\s*rating\s*(>=|<=|==|>|<)\s*(-?[0-9.]+)\s*", rule)
    if not m:
        raise ConfigError(f"recipe label_rule {rule!r}: expected e.g. 'rating>3' or 'rating>=4'")
    if rating.isna().any():
        raise DataError(f"label_rule {rule!r} needs a rating on every interaction; some have none")
    return _OPS[m.group(1)](rating.to_numpy(), float(m.group(2))).astype(np.int8)


def _to_seconds(text: str, key: str) -> int:
    try:
        return int(pd.Timestamp(text, tz="UTC").timestamp())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"recipe {key}: expected an ISO date like '2017-01-01', got {text!r}") from exc


def count_filter(df: pd.DataFrame, min_user: int, min_item: int, mode: str) -> pd.DataFrame:
    """Keep users/items with at least ``min_*`` interactions; ``iterative`` repeats until nothing changes."""
    if mode not in ("once", "iterative"):
        raise ConfigError(f"recipe kcore: expected 'once' or 'iterative', got {mode!r}")
    while True:
        ucount = df.groupby("user_raw")["item_raw"].transform("size")
        icount = df.groupby("item_raw")["user_raw"].transform("size")
        keep = (ucount >= min_user) & (icount >= min_item)
        if keep.all():
            return df
        df = df[keep.to_numpy()]
        if mode == "once":
            return df


def _natural_order(values: np.ndarray) -> np.ndarray:
    """Sorted unique raw ids: numerically when all are integers (ml ids 1..n), else as strings."""
    uniq = pd.unique(values)
    as_num = pd.to_numeric(pd.Series(uniq), errors="coerce")
    if as_num.notna().all() and (as_num % 1 == 0).all():
        return np.asarray(uniq[np.argsort(as_num.to_numpy(), kind="stable")], dtype=object)
    return np.asarray(sorted(uniq), dtype=object)


def _feature_table(ids: np.ndarray, features: pd.DataFrame | None) -> pd.DataFrame:
    table = pd.DataFrame({"raw_id": pd.Series(ids, dtype=object).astype(str)})
    if features is not None:
        table = table.merge(features.astype({"raw_id": str}), on="raw_id", how="left", validate="one_to_one")
    return table


def build_data(
    name: str,
    interactions: pd.DataFrame,
    items: pd.DataFrame | None,
    users: pd.DataFrame | None,
    recipe: dict[str, Any],
    *,
    domain: str = "items",
    stats: dict[str, Any] | None = None,
    carry: tuple[str, ...] = (),
) -> InteractionData:
    """Apply ``recipe`` to raw frames (``user_raw, item_raw, rating, timestamp[, label]``) -> checked data."""
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ConfigError(
            f"dataset {name!r}: unknown recipe key(s) {unknown}; expected some of {list(RECIPE_KEYS)}"
        )
    stats = dict(stats or {})
    df = _apply_recipe(name, interactions.copy(), items, recipe, stats)
    user_ids, item_ids = _natural_order(df["user_raw"].to_numpy()), _natural_order(df["item_raw"].to_numpy())
    out = pd.DataFrame(
        {
            "user": pd.Categorical(df["user_raw"], categories=user_ids).codes.astype(np.int64),
            "item": pd.Categorical(df["item_raw"], categories=item_ids).codes.astype(np.int64),
            "rating": df["rating"].to_numpy(dtype=np.float64),
            "label": df["label"].to_numpy(dtype=np.int8),
            "timestamp": df["timestamp"].to_numpy(dtype=np.int64),
            **{
                col: df[col].to_numpy() for col in carry
            },  # caller-owned columns (pre-split parts), popped by it
        }
    )
    # A stable sort on time alone: same-second interactions keep the raw file's order, as RecBole
    # (Interaction.sort, kind="stable") and OpenP5 order them. Until DATA_LAYER_VERSION 2 ties were broken
    # by (user, item), which made leave-one-out pick the highest item id among ties (lower-popularity items
    # on ml-100k); split parameter ``tie_break: item`` (benchbed.data.splits) restores that order.
    out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    item_table = _item_table(item_ids, items, stats)
    user_table = _feature_table(user_ids, users)
    user_cols = [c for c in user_table.columns if user_table[c].dtype == object]
    user_table[user_cols] = user_table[user_cols].fillna("")
    stats.update(users=len(user_table), items=len(item_table), interactions=len(out))
    if (out["label"] >= 0).all():
        stats["positive_rate"] = round(float(out["label"].mean()), 4)
    return InteractionData(
        name=name, interactions=out, items=item_table, users=user_table, stats=stats, domain=domain
    ).validate()


def _apply_recipe(
    name: str, df: pd.DataFrame, items: pd.DataFrame | None, recipe: dict[str, Any], stats: dict[str, Any]
) -> pd.DataFrame:
    """The recipe's steps in order (labels, time range, titles, de-duplication, positives, count filters);
    what each removed goes to ``stats``."""
    stats["raw_interactions"] = len(df)
    rule = recipe.get("label_rule")
    if rule:
        df["label"] = apply_label_rule(df["rating"], rule)
    elif "label" not in df:
        df["label"] = np.int8(-1)
    if recipe.get("time_from") or recipe.get("time_to"):
        df = _time_range(df, recipe, stats)
    if recipe.get("require_title"):
        titled = (
            set() if items is None else set(items.loc[items["title"].astype(str).str.strip() != "", "raw_id"])
        )
        keep = df["item_raw"].isin(titled).to_numpy()
        stats["interactions_without_item_title"] = int((~keep).sum())
        df = df[keep]
    if recipe.get("dedupe", "last") == "last":
        before = len(df)
        df = df.sort_values("timestamp", kind="stable").drop_duplicates(["user_raw", "item_raw"], keep="last")
        stats["duplicates_removed"] = before - len(df)
    if recipe.get("positives_only"):
        if not rule:
            raise ConfigError(f"dataset {name!r}: recipe positives_only needs a label_rule (e.g. 'rating>3')")
        before = len(df)
        df = df[df["label"].to_numpy() == 1]
        stats["negatives_removed"] = before - len(df)
    min_user, min_item = int(recipe.get("min_user_count", 0)), int(recipe.get("min_item_count", 0))
    if min_user > 1 or min_item > 1:
        before = len(df)
        df = count_filter(df, min_user, min_item, recipe.get("kcore", "once"))
        stats["removed_by_count_filter"] = before - len(df)
    if len(df) == 0:
        raise DataError(f"dataset {name!r}: no interactions left after preprocessing ({stats})")
    return df


def _time_range(df: pd.DataFrame, recipe: dict[str, Any], stats: dict[str, Any]) -> pd.DataFrame:
    """Keep ``time_from <= t < time_to`` (either bound may be absent)."""
    lo = _to_seconds(recipe["time_from"], "time_from") if recipe.get("time_from") else np.iinfo(np.int64).min
    hi = _to_seconds(recipe["time_to"], "time_to") if recipe.get("time_to") else np.iinfo(np.int64).max
    keep = ((df["timestamp"] >= lo) & (df["timestamp"] < hi)).to_numpy()
    stats["outside_time_range"] = int((~keep).sum())
    return df[keep]


def _item_table(item_ids: np.ndarray, items: pd.DataFrame | None, stats: dict[str, Any]) -> pd.DataFrame:
    """Item features by dense id; an item without a title is titled by its raw id (counted in ``stats``)."""
    item_table = _feature_table(item_ids, items)
    if "title" not in item_table:
        item_table["title"] = ""
    item_table["title"] = item_table["title"].astype(object)
    missing_title = item_table["title"].isna() | (item_table["title"].astype(str).str.strip() == "")
    stats["items_without_title"] = int(missing_title.sum())
    item_table.loc[missing_title, "title"] = item_table.loc[missing_title, "raw_id"]
    text_cols = [c for c in item_table.columns if item_table[c].dtype == object]
    item_table[text_cols] = item_table[text_cols].fillna("")
    return item_table
