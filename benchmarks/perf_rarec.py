"""RA-Rec evaluation throughput: the item tower computed once and cached vs recomputed for every user.

    BENCHBED_CACHE=... python benchmarks/perf_rarec.py [--users 200] [--recompute-users 3] [--out perf.json]

Fits ``rarec`` (defaults: full variant, MiniLM, the CPU budget) on ml-100k leave-one-out through the same
stage cache as ``benchbed run`` (so after a run it only loads the trained alignment module), then times:
items/s of the item tower over the whole catalogue, users/s of full ranking with the cached item matrix, and
users/s when the item tower is recomputed per user (what a pointwise two-tower scorer without the cache does).
One run, one machine: the ratio is the figure to compare, not the absolute rates on a shared CPU.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--recompute-users", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    from benchbed.api import RunContext, TaskSetup
    from benchbed.data.prepare import prepare_split
    from benchbed.methods.rarec.method import RARec
    from benchbed.orchestration.embeddings import RegistryEmbeddings
    from benchbed.settings import get_settings

    split = prepare_split("ml-100k", "leave-one-out", {}).split
    ctx = RunContext(
        setup=TaskSetup(task="topk", feedback="interactions"), cache_dir=get_settings().cache_dir
    )
    ctx.embeddings = RegistryEmbeddings(ctx)
    method = RARec()
    method.fit(split, ctx)
    seqs = split.train_sequences()
    users = np.array(sorted(seqs))[: args.users]
    hist = [seqs[int(u)].tolist() for u in users]

    t = time.perf_counter()
    method.item_matrix()
    items_s = split.n_items / (time.perf_counter() - t)
    t = time.perf_counter()
    method.score_all(users, hist)
    cached_users_s = len(users) / (time.perf_counter() - t)
    t = time.perf_counter()
    for r in range(args.recompute_users):
        method._items = None  # what recomputing the item tower per user costs
        method.score_all(users[r : r + 1], hist[r : r + 1])
    recompute_users_s = args.recompute_users / (time.perf_counter() - t)
    report = {
        "dataset": "ml-100k",
        "protocol": "leave-one-out",
        "n_items": split.n_items,
        "items_per_s": round(items_s, 2),
        "users_per_s_cached_items": round(cached_users_s, 2),
        "users_per_s_recomputed_items": round(recompute_users_s, 4),
        "speedup": round(cached_users_s / recompute_users_s, 1),
        "train_samples_per_s": (method.record_info().get("training") or {})
        .get("train", {})
        .get("samples_per_s"),
        "training_loaded_from_cache": (method.record_info().get("training") or {}).get("loaded"),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
