"""Pointwise (CTR) metrics on labeled rows: AUC, UAUC, GAUC, LogLoss and per-user NDCG.

Inputs are 1-D arrays of equal length: ``users`` (any sortable ids), ``labels`` (0/1) and ``scores``
(any real numbers; only their order matters, except LogLoss which needs probabilities).

Per-user metrics never loop over users in Python: rows are sorted once by (user, score), user and
tie-run boundaries come from comparing neighbours, and per-run and per-user sums come from
``np.add.reduceat`` and ``np.bincount``. So UAUC on a million rows takes a fraction of a second where a
per-user ``roc_auc_score`` loop takes tens of seconds (``benchmarks/perf_metrics.py``).

Ties: scores that are equal within the group a metric ranks (all rows for AUC, one user's rows for the
per-user metrics) get their average rank, as scikit-learn's ``roc_auc_score`` does, i.e. the expected value
under a random tie-break. So a constant predictor scores exactly 0.5 AUC, whatever the row order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from benchbed.errors import DataError
from benchbed.metrics.base import UNDEFINED, MetricValue, as_1d, binary_labels, finite_scores

__all__ = ["MetricValue", "auc", "uauc", "gauc", "logloss", "user_ndcg", "sigmoid", "per_user_auc"]


@dataclass
class _Runs:
    """Rows sorted by (group, score), summarised as tie runs: maximal blocks of equal (group, score)."""

    labels: np.ndarray  # the labels in sorted order
    run_start: np.ndarray  # run -> first sorted position
    run_end: np.ndarray  # run -> one past its last sorted position
    run_group: np.ndarray  # run -> group index 0..G-1 (groups in ascending id order)
    group_start: np.ndarray  # group -> first sorted position
    group_size: np.ndarray  # group -> rows

    def run_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of a per-row (sorted order) array over each run."""
        return np.add.reduceat(values, self.run_start)

    def group_sum(self, per_run: np.ndarray) -> np.ndarray:
        return np.bincount(self.run_group, weights=per_run, minlength=self.group_start.shape[0])


def _group_codes(groups: np.ndarray) -> np.ndarray:
    """Group ids as small non-negative integers in id order; 16-bit when they fit, so numpy's stable
    sort is a radix sort."""
    if np.issubdtype(groups.dtype, np.integer) or groups.dtype == bool:
        codes = groups.astype(np.int64) - int(groups.min())
        span = int(codes.max())
    else:  # strings or other sortable ids
        codes = np.unique(groups, return_inverse=True)[1].reshape(-1)
        span = int(codes.max())
    for dtype in (np.uint16, np.uint32):
        if span <= np.iinfo(dtype).max:
            return codes.astype(dtype)
    return codes


def _runs(groups: np.ndarray | None, keys: np.ndarray, labels: np.ndarray) -> _Runs:
    """Sort rows by group then ``keys`` ascending and cut them into tie runs.

    An unstable sort by key followed by a stable sort by group code: equal keys of a group end up adjacent
    either way, and this is 2-4x faster than ``np.lexsort`` on a million rows.
    """
    n = keys.shape[0]
    order = np.argsort(keys)
    new_group = np.zeros(n, dtype=bool)
    if groups is not None:
        codes = _group_codes(groups)[order]
        by_group = np.argsort(codes, kind="stable")
        order, codes = order[by_group], codes[by_group]
        new_group[1:] = codes[1:] != codes[:-1]
    new_group[0] = True
    k = keys[order]
    new_run = new_group.copy()
    new_run[1:] |= k[1:] != k[:-1]
    run_start = np.flatnonzero(new_run)
    group_start = np.flatnonzero(new_group)
    return _Runs(
        labels=labels[order],
        run_start=run_start,
        run_end=np.append(run_start[1:], n),
        run_group=np.cumsum(new_group)[run_start] - 1,
        group_start=group_start,
        group_size=np.diff(np.append(group_start, n)),
    )


def _group_auc(groups: np.ndarray | None, labels: np.ndarray, scores: np.ndarray):
    """Per-group AUC by the rank-sum (Mann-Whitney) formula with average ranks for ties.

    Returns (auc per group, positives per group, negatives per group); AUC is NaN for single-class groups.
    """
    if groups is None:  # one group: skip the per-group bookkeeping (about a third of the time)
        order = np.argsort(scores)
        ordered = scores[order]
        run_start = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        pos_in_run = np.add.reduceat(labels[order], run_start)
        run_rank = (run_start + np.append(run_start[1:], len(scores)) + 1) / 2.0
        pos, neg = np.array([pos_in_run.sum()]), np.array([len(scores) - pos_in_run.sum()])
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (pos_in_run @ run_rank - pos * (pos + 1) / 2.0) / (pos * neg)
        return np.where((pos == 0) | (neg == 0), np.nan, value), pos, neg
    runs = _runs(groups, scores, labels)
    pos_in_run = runs.run_sum(runs.labels)
    # 1-based average rank of a run within its group: the mean of its positions, shifted by the group start
    run_rank = (runs.run_start + runs.run_end + 1) / 2.0 - runs.group_start[runs.run_group]
    pos = runs.group_sum(pos_in_run)
    neg = runs.group_size - pos
    rank_sum = runs.group_sum(pos_in_run * run_rank)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)
    values[(pos == 0) | (neg == 0)] = np.nan
    return values, pos, neg


def _inputs(users: object, labels: object, scores: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = binary_labels(labels)
    s = finite_scores("scores", scores, len(y))
    u = as_1d("users", users, len(y))
    return u, y, s


def auc(labels: object, scores: object) -> MetricValue:
    """ROC-AUC over all rows (ties: average rank, equal to sklearn's ``roc_auc_score``); n = rows.

    Undefined (NaN, n=0) when only one class is present, where sklearn would raise.
    """
    y = binary_labels(labels)
    s = finite_scores("scores", scores, len(y))
    if y.size == 0:
        return UNDEFINED
    values, _, _ = _group_auc(None, y, s)
    if np.isnan(values[0]):
        return UNDEFINED
    return MetricValue(float(values[0]), int(y.size))


def per_user_auc(users: object, labels: object, scores: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted unique users, AUC per user with NaN for single-class users, positives per user).

    Exposed so callers can report or plot the per-user distribution behind UAUC and GAUC.
    """
    u, y, s = _inputs(users, labels, scores)
    if y.size == 0:
        return u[:0], np.zeros(0), np.zeros(0)
    values, pos, _ = _group_auc(u, y, s)
    return np.unique(u), values, pos  # groups come in ascending id order, as np.unique returns them


def uauc(users: object, labels: object, scores: object) -> MetricValue:
    """UAUC as in the CoLLM code: the unweighted mean of per-user AUC, skipping users with a single row
    or a single class; n = users averaged over."""
    found = _defined_user_aucs(users, labels, scores)
    if found is None:
        return UNDEFINED
    values, _ = found
    return MetricValue(float(values.mean()), int(values.size), values)


def gauc(users: object, labels: object, scores: object) -> MetricValue:
    """GAUC as in RecBole: per-user AUC weighted by the user's number of positives, skipping single-class
    users; n = users averaged over."""
    found = _defined_user_aucs(users, labels, scores)
    if found is None:
        return UNDEFINED
    values, pos = found
    value = float((values * pos).sum() / pos.sum())
    return MetricValue(value, int(values.size), values)  # per_unit: the users' AUC (weights: pos)


def _defined_user_aucs(users: object, labels: object, scores: object) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-user AUC and positives of the users whose AUC is defined (both classes); None when none is."""
    u, y, s = _inputs(users, labels, scores)
    if y.size == 0:
        return None
    values, pos, _ = _group_auc(u, y, s)
    valid = ~np.isnan(values)
    if not valid.any():
        return None
    return values[valid], pos[valid]


def sigmoid(logits: object) -> np.ndarray:
    """Probabilities from logits (numerically stable), for methods that return raw scores."""
    return np.asarray(expit(np.asarray(logits, dtype=np.float64)))


def logloss(labels: object, probs: object, eps: float = 1e-15) -> MetricValue:
    """Mean binary cross-entropy; ``probs`` are clipped to [eps, 1 - eps] (RecBole's eps); n = rows.

    ``probs`` must be probabilities: logits are rejected (values outside [0, 1]) rather than silently
    clipped into a meaningless number; pass ``sigmoid(logits)`` instead.
    """
    y = binary_labels(labels)
    p = finite_scores("probs", probs, len(y))
    if y.size == 0:
        return UNDEFINED
    if p.min() < 0 or p.max() > 1:
        raise DataError(
            f"logloss needs probabilities in [0, 1], got range [{p.min():.4g}, {p.max():.4g}]; "
            "apply benchbed.metrics.classification.sigmoid to logits first"
        )
    p = np.clip(p, eps, 1 - eps)
    loss = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return MetricValue(float(loss.mean()), int(y.size), loss)


def user_ndcg(
    users: object, labels: object, scores: object, *, skip_single_class: bool = False
) -> MetricValue:
    """Per-user NDCG over each user's labeled rows, averaged over users (our definition of CoLLM's NDCG).

    For a user, rank all of the user's rows by score (descending); DCG = sum of label / log2(rank + 1);
    IDCG is the DCG of the ideal order (all positives first); NDCG = DCG / IDCG. No cut-off. Users without
    a positive are skipped (IDCG = 0); users whose rows are all positive score 1. With
    ``skip_single_class`` users with all-positive rows are skipped too, mirroring UAUC's user set.
    Tied scores share the average discount of the positions they occupy (the expected DCG under a random
    tie-break). n = users averaged over.
    """
    u, y, s = _inputs(users, labels, scores)
    if y.size == 0:
        return UNDEFINED
    runs = _runs(u, -s, y)
    pos_in_run = runs.run_sum(runs.labels)
    # tied rows share the mean discount of the positions [a, b) their run spans within the user's list
    largest = int(runs.group_size.max())
    cum_disc = np.concatenate(([0.0], np.cumsum(1.0 / np.log2(np.arange(2, largest + 2)))))
    offset = runs.group_start[runs.run_group]
    a, b = runs.run_start - offset, runs.run_end - offset
    dcg = runs.group_sum(pos_in_run * (cum_disc[b] - cum_disc[a]) / (b - a))
    pos = runs.group_sum(pos_in_run).astype(np.int64)
    size = runs.group_size
    ideal = cum_disc  # IDCG with p positives = discounts of positions 1..p
    valid = pos > 0
    if skip_single_class:
        valid &= pos < size
    if not valid.any():
        return UNDEFINED
    values = dcg[valid] / ideal[pos[valid]]
    return MetricValue(float(values.mean()), int(valid.sum()), values)  # per_unit: users in id order
