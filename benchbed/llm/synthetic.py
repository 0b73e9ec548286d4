"""Small synthetic CTR splits with a known answer, for tests and benchmarks of the LLM methods.

``planted_split``: labels come from a planted low-rank user x item structure (plus user/item offsets, also
low rank); titles are random words that carry no signal. A method that reads the collaborative embeddings
can beat a text-only one on warm rows; a text-only one cannot.
``title_signal_split``: labels depend only on a word in the item's title ("good" items vs "bad" items);
a set of test items has no training interaction at all, so ID models know nothing about them while a
model reading titles does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchbed.data.schema import InteractionData, Split

WORDS = (
    "river stone garden light winter summer city night ocean forest mountain paper glass silver golden "
    "shadow window letter story music dream road island bridge valley storm fire water cloud horse castle"
).split()


def _data(name: str, inter: pd.DataFrame, titles: list[str], n_users: int) -> InteractionData:
    items = pd.DataFrame({"raw_id": [str(i) for i in range(len(titles))], "title": titles})
    users = pd.DataFrame({"raw_id": [str(u) for u in range(n_users)]})
    return InteractionData(name=name, interactions=inter, items=items, users=users, domain="items").validate()


def _finish(
    data: InteractionData, parts: dict[str, pd.DataFrame], history_len: int, warm_threshold: int, params: dict
) -> Split:
    """Add history (earlier positives over all parts, last N) and warm/cold flags, as the CoLLM protocol."""
    frames = []
    for name in ("train", "valid", "test"):
        f = parts[name].copy()
        f["_part"] = name
        frames.append(f)
    allf = pd.concat(frames, ignore_index=True).sort_values(["timestamp", "user", "item"], kind="stable")
    hist: dict[int, list[int]] = {}
    histories = []
    for u, i, y in zip(
        allf["user"].to_numpy(), allf["item"].to_numpy(), allf["label"].to_numpy(), strict=True
    ):
        h = hist.setdefault(int(u), [])
        histories.append(h[-history_len:])
        if y == 1:
            h.append(int(i))
    allf["history"] = histories
    train = allf[allf["_part"] == "train"].drop(columns="_part").reset_index(drop=True)
    ucount = train["user"].value_counts()
    icount = train["item"].value_counts()
    out = {"train": train}
    for name in ("valid", "test"):
        f = allf[allf["_part"] == name].drop(columns="_part").reset_index(drop=True)
        f["user_warm"] = f["user"].map(ucount).fillna(0).to_numpy() >= warm_threshold
        f["item_warm"] = f["item"].map(icount).fillna(0).to_numpy() >= warm_threshold
        f["warm"] = f["user_warm"] & f["item_warm"]
        f["item_unseen"] = ~f["item"].isin(icount.index)
        out[name] = f
    split = Split(
        data=data,
        protocol="synthetic",
        params=params,
        train=out["train"],
        valid=out["valid"],
        test=out["test"],
    )
    split.hash = split.compute_hash()
    return split


def _interactions(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    arr = np.asarray(rows, dtype=np.int64)
    return pd.DataFrame(
        {
            "user": arr[:, 0],
            "item": arr[:, 1],
            "rating": np.where(arr[:, 2] == 1, 5.0, 2.0),
            "label": arr[:, 2].astype(np.int8),
            "timestamp": np.arange(len(arr), dtype=np.int64) * 60,
        }
    )


def planted_split(
    n_users: int = 120,
    n_items: int = 80,
    rows_per_user: int = 40,
    rank: int = 2,
    seed: int = 0,
    history_len: int = 5,
    warm_threshold: int = 3,
) -> Split:
    """Labels = 1[u.v + b_u + b_i + small noise > 0] with rank-``rank`` factors; uninformative titles."""
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n_users, rank))
    V = rng.normal(size=(n_items, rank))
    bu, bi = rng.normal(scale=0.5, size=n_users), rng.normal(scale=0.5, size=n_items)
    titles = [" ".join(rng.choice(WORDS, size=2)) for _ in range(n_items)]
    rows = []
    for _ in range(rows_per_user):
        for u in rng.permutation(n_users):
            i = int(rng.integers(n_items))
            logit = U[u] @ V[i] + bu[u] + bi[i] + rng.normal(scale=0.3)
            rows.append((int(u), i, int(logit > 0)))
    inter = _interactions(rows)
    data = _data("synthetic-planted", inter.copy(), titles, n_users)
    n = len(inter)
    cut1, cut2 = int(n * 0.8), int(n * 0.9)
    parts = {"train": inter.iloc[:cut1], "valid": inter.iloc[cut1:cut2], "test": inter.iloc[cut2:]}
    return _finish(data, parts, history_len, warm_threshold, {"kind": "planted", "seed": seed, "rank": rank})


def title_signal_split(
    n_users: int = 80,
    n_items: int = 60,
    n_cold: int = 20,
    rows_per_user: int = 25,
    seed: int = 0,
    history_len: int = 3,
    warm_threshold: int = 3,
) -> Split:
    """Labels = 1 iff the item is a "good" one, marked by its title's last word; ``n_cold`` items appear only
    in valid/test."""
    rng = np.random.default_rng(seed)
    good = rng.random(n_items) < 0.5
    titles = [f"{rng.choice(WORDS)} {'wonderful' if g else 'terrible'}" for g in good]
    cold = set(range(n_items - n_cold, n_items))
    warm_items = [i for i in range(n_items) if i not in cold]
    rows = []
    for _ in range(rows_per_user):
        for u in rng.permutation(n_users):
            i = int(rng.choice(warm_items))
            y = int(good[i]) if rng.random() > 0.1 else int(not good[i])
            rows.append((int(u), i, y))
    n_train = len(rows)
    for _ in range(6):
        for u in rng.permutation(n_users):
            i = int(rng.integers(n_items))
            rows.append((int(u), i, int(good[i])))
    inter = _interactions(rows)
    data = _data("synthetic-titles", inter.copy(), titles, n_users)
    rest = inter.iloc[n_train:]
    half = len(rest) // 2
    parts = {"train": inter.iloc[:n_train], "valid": rest.iloc[:half], "test": rest.iloc[half:]}
    return _finish(data, parts, history_len, warm_threshold, {"kind": "title-signal", "seed": seed})


def item_signal_split(
    n_users: int = 40,
    n_items: int = 60,
    rows_per_user: int = 20,
    noise: float = 0.1,
    seed: int = 0,
    history_len: int = 1,
    warm_threshold: int = 1,
) -> tuple[Split, np.ndarray]:
    """Labels = 1 iff the item is a "good" one (flipped with probability ``noise``); titles are random words
    drawn independently of goodness, so no text carries the answer. Returns the split and each item's
    goodness (0/1), from which a test builds CF vectors that do carry it (CoLLM's planted test)."""
    rng = np.random.default_rng(seed)
    good = (rng.random(n_items) < 0.5).astype(np.int64)
    titles = [" ".join(rng.choice(WORDS, size=2)) for _ in range(n_items)]
    rows = []
    for _ in range(rows_per_user):
        for u in rng.permutation(n_users):
            i = int(rng.integers(n_items))
            y = int(good[i]) if rng.random() >= noise else int(1 - good[i])
            rows.append((int(u), i, y))
    inter = _interactions(rows)
    data = _data("synthetic-item-signal", inter.copy(), titles, n_users)
    n = len(inter)
    cut1, cut2 = int(n * 0.7), int(n * 0.8)
    parts = {"train": inter.iloc[:cut1], "valid": inter.iloc[cut1:cut2], "test": inter.iloc[cut2:]}
    params = {"kind": "item-signal", "seed": seed}
    return _finish(data, parts, history_len, warm_threshold, params), good
