"""HR@k / NDCG@k of generated id lists, through the same functions the ``topk`` task uses.

One ground truth per user, so NDCG's ideal DCG is 1 (``n_pos = 1``) and HR@k is the share of users whose
target is among the first k generated ids; -1 (no valid id) never hits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchbed.metrics.ranking import hit_rate, hits_from_rankings, ndcg


def generative_metrics(ranked: np.ndarray, targets: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """``{"hr@5": .., "ndcg@5": .., ...}`` averaged over the rows of ``ranked`` (n, K)."""
    ranked = np.asarray(ranked, dtype=np.int64)
    positives = [np.asarray([t], dtype=np.int64) for t in np.asarray(targets, dtype=np.int64)]
    hits = hits_from_rankings(ranked, positives)
    n_pos = np.ones(len(positives), dtype=np.int64)
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = hit_rate(hits, n_pos, k).value
        out[f"ndcg@{k}"] = ndcg(hits, n_pos, k).value
    return out
