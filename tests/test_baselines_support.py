"""Data builders for the baselines tests (no tests here): planted blocks, ml-100k from RecBole's wheel."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from benchbed.data.schema import InteractionData, Split


def _flags(frame: pd.DataFrame, train: pd.DataFrame, threshold: int = 3) -> pd.DataFrame:
    frame = frame.copy()
    uc, ic = train["user"].value_counts(), train["item"].value_counts()
    frame["user_warm"] = frame["user"].map(uc).fillna(0).to_numpy() >= threshold
    frame["item_warm"] = frame["item"].map(ic).fillna(0).to_numpy() >= threshold
    frame["warm"] = frame["user_warm"] & frame["item_warm"]
    frame["item_unseen"] = ~frame["item"].isin(train["item"])
    return frame


def _histories(inter: pd.DataFrame, n: int) -> list[list[int]]:
    """Each row's earlier positives of its user (time order), last n, as CoLLM builds CTR histories."""
    seen: dict[int, list[int]] = {}
    out = []
    for u, i, y in zip(inter["user"], inter["item"], inter["label"], strict=True):
        h = seen.setdefault(int(u), [])
        out.append(h[-n:])
        if y == 1:
            h.append(int(i))
    return out


def leave_last_out(data: InteractionData, n_valid: int = 1, n_test: int = 1, history_len: int = 10) -> Split:
    """Per user in row order of ``data.interactions`` (time order, ties as stored): the last ``n_test`` rows
    are test, the ``n_valid`` before them valid (``n_valid = n_test = 1``: leave-one-out)."""
    inter = data.interactions.copy()
    if data.labeled:
        inter["history"] = _histories(inter, history_len)
    from_end = inter.groupby("user").cumcount(ascending=False).to_numpy()
    train = inter[from_end >= n_test + n_valid].reset_index(drop=True)
    valid = _flags(inter[(from_end >= n_test) & (from_end < n_test + n_valid)], train).reset_index(drop=True)
    test = _flags(inter[from_end < n_test], train).reset_index(drop=True)
    split = Split(
        data,
        "leave-one-out",
        {"history_len": history_len, "n_valid": n_valid, "n_test": n_test},
        train,
        valid,
        test,
    )
    split.hash = split.compute_hash()
    return split


def planted_blocks(
    *,
    n_blocks: int = 4,
    users_per_block: int = 30,
    items_per_block: int = 15,
    per_user: int = 10,
    negatives: int = 0,
    seed: int = 0,
) -> tuple[InteractionData, np.ndarray, np.ndarray]:
    """Users interact only with items of their own block (in random time order).

    With ``negatives`` > 0 each user also has that many out-of-block rows labeled 0 (and in-block rows are
    labeled 1), so the data is labeled (CTR); otherwise implicit. Returns (data, user_block, item_block).
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = n_blocks * users_per_block, n_blocks * items_per_block
    user_block = np.repeat(np.arange(n_blocks), users_per_block)
    item_block = np.repeat(np.arange(n_blocks), items_per_block)
    rows = []
    for u in range(n_users):
        own = np.flatnonzero(item_block == user_block[u])
        items = [(int(i), 1) for i in rng.choice(own, size=per_user, replace=False)]
        if negatives:
            other = np.flatnonzero(item_block != user_block[u])
            items += [(int(i), 0) for i in rng.choice(other, size=negatives, replace=False)]
        order = rng.permutation(len(items))
        for t, k in enumerate(order):
            rows.append((u, items[k][0], items[k][1], 1_000_000 + 1000 * t + u))
    inter = pd.DataFrame(rows, columns=["user", "item", "label", "timestamp"])
    inter["rating"] = np.where(inter["label"] == 1, 5.0, 1.0)
    if not negatives:
        inter["label"] = -1
    inter = inter[["user", "item", "rating", "label", "timestamp"]].astype(
        {"user": "int64", "item": "int64", "label": "int8", "timestamp": "int64"}
    )
    inter = inter.sort_values(["timestamp"], kind="stable").reset_index(drop=True)
    items = pd.DataFrame(
        {"raw_id": [f"i{i}" for i in range(n_items)], "title": [f"item {i}" for i in range(n_items)]}
    )
    users = pd.DataFrame({"raw_id": [f"u{u}" for u in range(n_users)]})
    data = InteractionData("planted", inter, items, users).validate()
    return data, user_block, item_block


def ml100k_recbole_order() -> InteractionData:
    """ml-100k from RecBole's wheel, rows in time order with ties kept in file order (as RecBole sorts).

    Dense ids follow the raw ids; label = rating > 3.
    """
    import recbole

    path = os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k", "ml-100k.inter")
    df = pd.read_csv(path, sep="\t")
    df.columns = [c.split(":")[0] for c in df.columns]
    users, items = np.sort(df["user_id"].unique()), np.sort(df["item_id"].unique())
    inter = pd.DataFrame(
        {
            "user": np.searchsorted(users, df["user_id"].to_numpy()).astype("int64"),
            "item": np.searchsorted(items, df["item_id"].to_numpy()).astype("int64"),
            "rating": df["rating"].astype(float),
            "label": (df["rating"] > 3).astype("int8"),
            "timestamp": df["timestamp"].astype("int64"),
        }
    )
    inter = inter.iloc[np.argsort(inter["timestamp"].to_numpy(), kind="stable")].reset_index(drop=True)
    return InteractionData(
        "ml-100k-recbole-order",
        inter,
        pd.DataFrame({"raw_id": items.astype(str), "title": [f"movie {i}" for i in items]}),
        pd.DataFrame({"raw_id": users.astype(str)}),
        domain="movies",
    )
