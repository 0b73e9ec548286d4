"""CLLM4Rec's model selection: the validation users and items, and the board's metrics the authors pick the
fine-tuning epoch with (Recall@20 + Recall@40 + NDCG@100 with recall over min(K, |T|), src/libs/util.py and
src/finetuning.py).
"""

from __future__ import annotations

import numpy as np

from benchbed.data.schema import Split
from benchbed.metrics import hits_from_rankings, resolve
from benchbed.metrics.ranking import top_k

METRIC_KEYS = ("recall_min@20", "recall_min@40", "ndcg@100")  # the board's, as src/libs/util.py


def valid_targets(
    split: Split, use_labels: bool, train_items: list[np.ndarray], max_users: int, seed: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Validation users with training items (a seeded sample of ``max_users`` when 0 < it < their count) and
    each one's validation items (label-1 rows only when ``use_labels``)."""
    rows = split.valid if not use_labels else split.valid[split.valid["label"] == 1]
    groups = {int(u): g["item"].unique() for u, g in rows.groupby("user", sort=True)}
    users = np.array(sorted(u for u in groups if len(train_items[u])), dtype=np.int64)
    if 0 < max_users < len(users):
        users = np.sort(np.random.default_rng([seed, 41]).permutation(users)[:max_users])
    return users, [np.asarray(groups[int(u)], dtype=np.int64) for u in users]


def board_metrics(scores: np.ndarray, pos: list[np.ndarray]) -> dict[str, float]:
    """:data:`METRIC_KEYS` of a score matrix (one row per user, training items already at -inf)."""
    ranked, _ = top_k(scores, 100)
    hits = hits_from_rankings(ranked, pos)
    n_pos = np.array([len(x) for x in pos], dtype=np.int64)
    out = {}
    for key in METRIC_KEYS:
        rm = resolve(key)
        out[key] = float(rm.fn(hits, n_pos, rm.k).value)
    return out
