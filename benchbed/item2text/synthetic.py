"""Planted item-to-text data (``../shared/protocols/ilm.md`` §1h): titles carry no genre, behaviour does.

Items fall into ``n_clusters`` clusters; each cluster owns three genre words (every item of a cluster has
exactly those). Titles are random nonsense syllables, so a text-only model cannot recover the genres of a
held-out item. Users prefer one cluster and interact mostly with its items (``noise`` share elsewhere), so
co-occurrence neighbours and ALS/MF embeddings of the training interactions recover the clusters.
``planted_vectors`` gives the clusters' true vectors (``dim``-d centroid + small noise) and ``shuffled``
rows as the negative control; both for the mechanism tests of the item2text methods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchbed.data.schema import InteractionData, Split

GENRE_WORDS = (
    "Noir Western Musical Horror Comedy Romance Fantasy Mystery Thriller Drama Action Adventure "
    "Crime War Family Sport History Documentary Animation Biography Satire Space Heist Spy"
).split()
SYLLABLES = "ka lo mi ru te zu vo na pe si do xa bi qu ne fo".split()


def planted_data(
    n_items: int = 240,
    n_clusters: int = 6,
    n_users: int = 300,
    per_user: int = 16,
    noise: float = 0.1,
    seed: int = 0,
    name: str = "planted-i2t",
) -> InteractionData:
    """The planted dataset (items table: ``raw_id``, ``title``, ``genres``, ``cluster``)."""
    if 3 * n_clusters > len(GENRE_WORDS):
        raise ValueError(f"planted_data: at most {len(GENRE_WORDS) // 3} clusters")
    rng = np.random.default_rng(seed)
    cluster = np.arange(n_items) % n_clusters
    rng.shuffle(cluster)
    genres = [GENRE_WORDS[3 * c : 3 * c + 3] for c in range(n_clusters)]
    titles: list[str] = []
    seen: set[str] = set()
    while len(titles) < n_items:
        t = " ".join(
            "".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 4)))).capitalize() for _ in range(2)
        )
        if t not in seen:
            seen.add(t)
            titles.append(t)
    items = pd.DataFrame(
        {
            "raw_id": [str(i) for i in range(n_items)],
            "title": titles,
            "genres": [", ".join(genres[c]) for c in cluster],
            "cluster": cluster,
        }
    )
    rows = []
    clock = 0
    for u in range(n_users):
        pref = int(rng.integers(n_clusters))
        own = np.flatnonzero(cluster == pref)
        other = np.flatnonzero(cluster != pref)
        n_other = int(rng.binomial(per_user, noise))
        chosen = [*rng.choice(own, size=per_user - n_other, replace=False), *rng.choice(other, size=n_other)]
        for i in rng.permutation(np.asarray(chosen)):
            rows.append((u, int(i), 1.0, -1, clock))
            clock += 1
    inter = pd.DataFrame(rows, columns=["user", "item", "rating", "label", "timestamp"])
    inter = inter.drop_duplicates(["user", "item"]).reset_index(drop=True)
    inter = inter.astype(
        {"user": "int64", "item": "int64", "rating": "float64", "label": "int8", "timestamp": "int64"}
    )
    users = pd.DataFrame({"raw_id": [str(u) for u in range(n_users)]})
    return InteractionData(
        name=name, interactions=inter, items=items, users=users, domain="movies"
    ).validate()


def planted_vectors(
    data: InteractionData, dim: int = 32, sigma: float = 0.1, seed: int = 0
) -> dict[str, np.ndarray]:
    """``{"item": (n_items, dim) cluster centroid + sigma noise, "shuffled": the same rows permuted}``."""
    rng = np.random.default_rng(seed)
    cluster = data.items["cluster"].to_numpy()
    centroids = rng.normal(size=(int(cluster.max()) + 1, dim))
    item = centroids[cluster] + sigma * rng.normal(size=(len(cluster), dim))
    return {"item": item.astype(np.float32), "shuffled": item[rng.permutation(len(item))].astype(np.float32)}


def planted_split(data: InteractionData) -> Split:
    """The leave-one-out split of ``data`` (benchbed's protocol function and enrichment, no disk cache)."""
    from benchbed.data.enrich import add_flags, add_histories
    from benchbed.data.splits import PROTOCOLS

    proto = next(p for p in PROTOCOLS if p.name == "leave-one-out")
    params = proto.resolve({})
    parts = proto(data, params)
    frames = {
        name: data.interactions.iloc[np.asarray(getattr(parts, name))].reset_index(drop=True)
        for name in ("train", "valid", "test")
    }
    add_histories(frames, int(params["history_len"]))
    for name in ("valid", "test"):
        add_flags(frames[name], frames["train"], data, int(params["warm_threshold"]))
    split = Split(data=data, protocol=proto.name, params=params, **frames)
    split.hash = split.compute_hash()
    return split
