"""Interaction filters a split protocol applies before it draws: which interactions count at all.

CLLM4Rec "binarize[s] the interactions by keeping only ratings > 3 and treat[s] them as implicit feedback
[...] In addition, we filter the datasets such that they keep the 5-core property after binarization. For
each user, we randomly select 80% of interactions for training [...]" (seed 001, §4.1.1). The order is
the paper's: rating filter, then the iterative 5-core on what is left, then the split. The authors' code
(github.com/yaochenzhu/LLM4Rec) ships only the resulting matrices, no preprocessing script, so the paper's
words are the reference.

Two split parameters, accepted by every drawn protocol (``benchbed.data.splits.Protocol``):

- ``rating_above``: keep only interactions whose rating is strictly above this value (CLLM4Rec: 3);
  None (the default) keeps every interaction.
- ``kcore``: then keep the iterative ``kcore``-core of users and items (each user and each item keeps at
  least ``kcore`` interactions, repeated until stable; CLLM4Rec: 5); 0 (the default) keeps all.

A filter at its neutral value is left out of the resolved parameters, so splits without a filter keep the
parameters, cache keys and hashes they always had; a filtered split differs from the unfiltered one in its
parameters, hence in its cache entry, its ``Split.hash``, every record's ``split_params`` and its board.
``apply`` gives the protocol the filtered dataset: only the kept interactions, and only the users and items
they name, re-indexed (a dropped item is no candidate in full ranking, as in the paper's data).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchbed.data.schema import InteractionData
from benchbed.errors import DataError
from benchbed.params import Param

FILTER_SPECS: dict[str, Param] = {
    "rating_above": Param(
        kind="float",
        nullable=True,
        min=0,  # every catalog source rates 1-5 (ml-100k, ml-1m, Amazon, Yelp): a threshold below 1 keeps all
        help="keep only interactions rated strictly above this value, before the split (CLLM4Rec: 3)",
    ),
    "kcore": Param(
        kind="int",
        min=0,
        help="after rating_above, keep the iterative k-core of users and items (CLLM4Rec: 5); 0 = none",
    ),
}
NEUTRAL: dict[str, Any] = {"rating_above": None, "kcore": 0}


def without_neutral(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every filter at its neutral value removed (an unfiltered split keeps its hash)."""
    return {k: v for k, v in params.items() if not (k in NEUTRAL and v == NEUTRAL[k])}


def active(params: dict[str, Any]) -> bool:
    """Whether ``params`` ask for any filter."""
    return any(params.get(k, neutral) != neutral for k, neutral in NEUTRAL.items())


def iterative_kcore(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the rows in the ``k``-core: every kept user and item has >= ``k`` kept rows."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        u_count = np.bincount(users[keep], minlength=int(users.max(initial=-1)) + 1)
        i_count = np.bincount(items[keep], minlength=int(items.max(initial=-1)) + 1)
        ok = keep & (u_count[users] >= k) & (i_count[items] >= k)
        if np.array_equal(ok, keep):
            return keep
        keep = ok


def kept_rows(data: InteractionData, params: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Positions (into ``data.interactions``, in order) the filters keep, and counts of what they removed."""
    df = data.interactions
    keep = np.ones(len(df), dtype=bool)
    stats: dict[str, Any] = {"interactions_before_filter": len(df)}
    threshold = params.get("rating_above")
    if threshold is not None:
        rating = df["rating"].to_numpy(dtype=np.float64)
        if np.isnan(rating).any():
            raise DataError(
                f"dataset {data.name!r}: split parameter rating_above={threshold} needs a rating on every "
                "interaction; some have none (an implicit dataset)"
            )
        keep &= rating > float(threshold)
        stats["removed_by_rating"] = int((~keep).sum())
    k = int(params.get("kcore") or 0)
    if k > 1:
        before = int(keep.sum())
        rows = np.flatnonzero(keep)
        core = iterative_kcore(df["user"].to_numpy()[rows], df["item"].to_numpy()[rows], k)
        keep[rows[~core]] = False
        stats["removed_by_kcore"] = before - int(keep.sum())
    stats["interactions_after_filter"] = int(keep.sum())
    if not keep.any():
        raise DataError(f"dataset {data.name!r}: the split filters {params_text(params)} keep no interaction")
    return np.flatnonzero(keep), stats


def apply(data: InteractionData, params: dict[str, Any]) -> InteractionData:
    """The data a protocol draws from: ``data`` itself without a filter, else only the kept interactions,
    with the users and items they name re-indexed 0..n-1 (raw ids and features kept), so the filtered
    dataset is what the paper ranks over (CLLM4Rec's item count is the 5-core's). Its ``stats`` say what
    the filters removed (``split_filter``)."""
    if not active(params):
        return data
    rows, stats = kept_rows(data, params)
    kept = data.interactions.iloc[rows].reset_index(drop=True)
    users = np.unique(kept["user"].to_numpy())
    items = np.unique(kept["item"].to_numpy())
    kept["user"] = np.searchsorted(users, kept["user"].to_numpy()).astype(np.int64)
    kept["item"] = np.searchsorted(items, kept["item"].to_numpy()).astype(np.int64)
    stats.update(users_before_filter=data.n_users, items_before_filter=data.n_items)
    out = InteractionData(
        name=data.name,
        interactions=kept,
        items=data.items.iloc[items].reset_index(drop=True),
        users=data.users.iloc[users].reset_index(drop=True),
        stats={**data.stats, "users": len(users), "items": len(items), "interactions": len(kept)},
        domain=data.domain,
    )
    out.stats["split_filter"] = {"params": params_text(params), **stats}
    return out.validate()


def params_text(params: dict[str, Any]) -> str:
    """``rating_above=3, kcore=5``: the active filters, for messages."""
    return ", ".join(f"{k}={params[k]}" for k in NEUTRAL if params.get(k, NEUTRAL[k]) != NEUTRAL[k])
