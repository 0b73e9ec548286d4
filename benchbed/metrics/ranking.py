"""Top-K ranking metrics (HR, NDCG, Recall, MRR, Precision) on a hit matrix.

Both evaluation forms reduce to the same input. Full ranking: scores over all items with the user's training
items set to -inf -> :func:`top_k` -> ranked item ids. Sampled candidates: scores over each user's candidate
list -> :func:`top_k` with ``candidates`` -> ranked item ids. Then :func:`hits_from_rankings` marks which
ranked items are positives, and every metric reads the hit matrix plus each user's number of positives.

Conventions (shared with RecBole's ``recbole.evaluator.metrics`` unless noted):
- Users with no positives (``n_pos == 0``) are excluded: they neither count in the mean nor in ``n``. RecBole
  would divide by zero for them; CLLM4Rec drops them too. ``n`` is the number of users averaged over.
- Ties in scores are broken by the lower item id (:func:`top_k`), so a ranking never depends on the order
  in which a method happened to return its scores. Scores of -inf never rank (they become -1 padding).
- ``k`` larger than the list (few candidates, or padding) works: missing positions count as misses.
- NDCG's ideal DCG is over ``min(k, n_pos)`` positions; Precision divides by ``k`` (as RecBole does).
- Recall's denominator is ``n_pos`` ("positives", RecBole) or ``min(k, n_pos)`` ("min_k", CLLM4Rec).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from benchbed.errors import DataError
from benchbed.metrics.base import UNDEFINED, MetricValue

__all__ = [
    "MetricValue",
    "top_k",
    "hits_from_rankings",
    "positive_counts",
    "hit_rate",
    "ndcg",
    "recall",
    "mrr",
    "precision",
]


def top_k(scores: np.ndarray, k: int, candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` item ids per row and their scores, best first, ties broken by the lower item id.

    ``scores`` is (n, m); ``candidates`` (n, m) gives each column's item id (None: the column index is the
    id, i.e. full ranking). Entries of -inf never rank and show as id -1 / score -inf; rows are -1 padded
    when ``k > m``; NaN scores are an error. Uses ``torch.topk`` for speed (several times faster than
    numpy's argpartition on CPU). Rows with ties inside their top k are re-sorted by (score desc, id asc);
    rows whose k-th and (k+1)-th scores tie -- where the top set itself depends on tie-breaking -- fall back
    to a full sort of that row. So the result equals a full lexsort, at the cost of a partial sort.
    """
    scores, ids = _score_matrix(scores, k, candidates)
    n, m = scores.shape
    k_eff = min(k, m)
    if n == 0 or m == 0:
        return np.full((n, k), -1, dtype=np.int64), np.full((n, k), -np.inf, dtype=scores.dtype)
    vals, cols, boundary_tie = _top_columns(scores, k_eff)
    top_ids, top_scores = _tie_broken(scores, ids, vals, cols, boundary_tie, k_eff, m)
    top_ids = np.where(np.isneginf(top_scores), -1, top_ids)
    if k_eff < k:
        top_ids = np.pad(top_ids, ((0, 0), (0, k - k_eff)), constant_values=-1)
        top_scores = np.pad(top_scores, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
    return top_ids, top_scores


def _score_matrix(scores: np.ndarray, k: int, candidates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The scores as a 2-D float array and each column's item id (the column index for full ranking)."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise DataError(f"top_k expects a 2-D score matrix, got shape {scores.shape}")
    if k < 1:
        raise DataError(f"top_k needs k >= 1, got {k}")
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    n, m = scores.shape
    ids = np.broadcast_to(np.arange(m, dtype=np.int64), (n, m)) if candidates is None else candidates
    ids = np.asarray(ids, dtype=np.int64)
    if ids.shape != scores.shape:
        raise DataError(f"candidates shape {ids.shape} differs from scores shape {scores.shape}")
    return scores, ids


def _top_columns(scores: np.ndarray, k_eff: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top ``k_eff`` values and columns per row (``torch.topk``) and the rows whose top *set* is
    ambiguous (the k-th and (k+1)-th values tie); NaN raises."""
    import torch

    n, m = scores.shape
    if k_eff < m:
        vals_t, cols_t = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k_eff + 1, dim=1)
        vals, cols = vals_t.numpy(), cols_t.numpy()
        if np.isnan(vals[:, 0]).any():  # torch.topk ranks NaN above everything: one look at column 0 suffices
            _raise_nan(scores)
        # the top-k *set* is ambiguous only when the k-th and (k+1)-th values tie (and are rankable)
        boundary_tie = (vals[:, k_eff - 1] == vals[:, k_eff]) & (vals[:, k_eff - 1] > -np.inf)
        return vals[:, :k_eff], cols[:, :k_eff], boundary_tie
    if np.isnan(scores).any():
        _raise_nan(scores)
    return scores, np.broadcast_to(np.arange(m), (n, m)), np.zeros(n, dtype=bool)


def _tie_broken(
    scores: np.ndarray,
    ids: np.ndarray,
    vals: np.ndarray,
    cols: np.ndarray,
    boundary_tie: np.ndarray,
    k_eff: int,
    m: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Ids and scores of the top columns in (score desc, id asc) order: rows with ties inside the top set
    re-sorted, rows with a tie at its boundary fully sorted."""
    n = scores.shape[0]
    top_scores = np.take_along_axis(scores, cols, axis=1)
    top_ids = np.take_along_axis(ids, cols, axis=1)
    # rows whose order inside the top set depends on ties get re-sorted by (score desc, id asc); torch
    # returns values sorted, so with float scores this is usually a handful of rows
    inner_tie = (vals[:, 1:] == vals[:, :-1]).any(axis=1) if k_eff < m else np.ones(n, dtype=bool)
    resort = np.flatnonzero(inner_tie & ~boundary_tie)
    if resort.size:
        order = np.lexsort((top_ids[resort], -top_scores[resort]), axis=1)
        top_scores[resort] = np.take_along_axis(top_scores[resort], order, axis=1)
        top_ids[resort] = np.take_along_axis(top_ids[resort], order, axis=1)
    if boundary_tie.any():
        rows = np.flatnonzero(boundary_tie)
        full = np.lexsort((ids[rows], -scores[rows]), axis=1)[:, :k_eff]
        top_ids[rows] = np.take_along_axis(ids[rows], full, axis=1)
        top_scores[rows] = np.take_along_axis(scores[rows], full, axis=1)
    return top_ids, top_scores


def _raise_nan(scores: np.ndarray) -> None:
    raise DataError(f"scores contain NaN ({int(np.isnan(scores).sum())} entries); cannot rank them")


def _flatten(positives: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) int64 pairs of all positives, without a Python-level operation per element."""
    lens = np.array([len(p) for p in positives], dtype=np.int64)
    if lens.sum() == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    items = np.concatenate(positives).astype(np.int64, copy=False).reshape(-1)
    if items.min() < 0:
        raise DataError("positive item ids must be >= 0 (-1 is reserved for padding)")
    return np.repeat(np.arange(len(positives), dtype=np.int64), lens), items


def positive_counts(positives: list[np.ndarray]) -> np.ndarray:
    """Number of distinct positives per user (the ``n_pos`` the metrics take)."""
    rows, items = _flatten(positives)
    if items.size == 0:
        return np.zeros(len(positives), dtype=np.int64)
    base = int(items.max()) + 1
    keys = np.sort(rows * base + items)  # np.sort + neighbour test: several times faster than np.unique
    distinct = np.ones(keys.size, dtype=bool)
    distinct[1:] = keys[1:] != keys[:-1]
    return np.bincount(keys[distinct] // base, minlength=len(positives)).astype(np.int64)


def hits_from_rankings(ranked: np.ndarray, positives: list[np.ndarray]) -> np.ndarray:
    """Boolean (n, K) matrix: ``ranked[u, j]`` is one of user u's positives. -1 entries are never hits.

    Vectorised as a sorted-key lookup (no Python loop over users). Ranked lists are assumed to hold
    distinct items, as :func:`top_k` guarantees; a repeated positive would count twice.
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    if ranked.ndim != 2:
        raise DataError(f"ranked must be a 2-D (users, K) array, got shape {ranked.shape}")
    if len(positives) != ranked.shape[0]:
        raise DataError(f"positives has {len(positives)} users but ranked has {ranked.shape[0]} rows")
    rows, items = _flatten(positives)
    if items.size == 0:
        return np.zeros(ranked.shape, dtype=bool)
    base = 1 + max(int(items.max()), int(ranked.max(initial=0)))
    keys = np.sort(rows * base + items)
    query = np.arange(ranked.shape[0], dtype=np.int64)[:, None] * base + ranked
    at = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return (keys[at] == query) & (ranked >= 0)


def _prepare(hits: np.ndarray, n_pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hits truncated or False-padded to exactly k columns, restricted to users with positives."""
    hits = np.asarray(hits, dtype=bool)
    n_pos = np.asarray(n_pos, dtype=np.int64).reshape(-1)
    if hits.ndim != 2 or hits.shape[0] != n_pos.shape[0]:
        raise DataError(f"hits shape {hits.shape} does not match n_pos length {n_pos.shape[0]}")
    if k < 1:
        raise DataError(f"ranking metrics need k >= 1, got {k}")
    if hits.shape[1] >= k:
        hits = hits[:, :k]
    else:
        hits = np.pad(hits, ((0, 0), (0, k - hits.shape[1])), constant_values=False)
    keep = n_pos > 0
    return hits[keep], n_pos[keep]


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _mean(per_user: np.ndarray) -> MetricValue:
    """The mean over users with positives; ``per_unit`` keeps each such user's value, in input order."""
    if per_user.size == 0:
        return UNDEFINED
    return MetricValue(float(per_user.mean()), int(per_user.size), per_user)


def hit_rate(hits: np.ndarray, n_pos: np.ndarray, k: int) -> MetricValue:
    """HR@k: share of users with at least one positive in their top k."""
    h, _ = _prepare(hits, n_pos, k)
    return _mean(np.asarray(h.any(axis=1), dtype=np.float64))


def ndcg(hits: np.ndarray, n_pos: np.ndarray, k: int) -> MetricValue:
    """NDCG@k with binary gains; IDCG puts ``min(k, n_pos)`` positives at the top (RecBole, CLLM4Rec)."""
    h, p = _prepare(hits, n_pos, k)
    disc = _discounts(k)
    dcg = h.astype(np.float64) @ disc
    idcg = np.cumsum(disc)[np.minimum(p, k) - 1]
    return _mean(dcg / idcg)


def recall(
    hits: np.ndarray, n_pos: np.ndarray, k: int, denominator: Literal["positives", "min_k"] = "positives"
) -> MetricValue:
    """Recall@k = hits in top k / ``n_pos`` ("positives", RecBole) or / ``min(k, n_pos)`` ("min_k",
    CLLM4Rec)."""
    if denominator not in ("positives", "min_k"):
        raise DataError(f"recall denominator must be 'positives' or 'min_k', got {denominator!r}")
    h, p = _prepare(hits, n_pos, k)
    denom = p if denominator == "positives" else np.minimum(p, k)
    return _mean(h.sum(axis=1) / denom)


def mrr(hits: np.ndarray, n_pos: np.ndarray, k: int) -> MetricValue:
    """MRR@k: reciprocal rank of the first positive in the top k, 0 when there is none."""
    h, _ = _prepare(hits, n_pos, k)
    first = h.argmax(axis=1)
    return _mean(np.where(h.any(axis=1), 1.0 / (first + 1), 0.0))


def precision(hits: np.ndarray, n_pos: np.ndarray, k: int) -> MetricValue:
    """Precision@k = hits in top k / k (also when the list is shorter than k, as RecBole)."""
    h, _ = _prepare(hits, n_pos, k)
    return _mean(h.sum(axis=1) / k)
