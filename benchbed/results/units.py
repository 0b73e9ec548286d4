"""Per-unit metric values from a record's saved predictions: what paired tests compare between two runs.

A board cell is a mean over units: rows (AUC, LogLoss), users (UAUC, GAUC, CTR NDCG, every top-K and
generative metric@k) or test items (item-to-text SC and attribute F1). One function per task turns a
predictions frame and a column (``subset/metric``) into :class:`Units`: sorted unit keys and one value per
key, computed by the same metric functions the task's ``compute_metrics`` uses (their
``MetricValue.per_unit``), so ``units.mean`` is the record's number (tests check this on committed records).

AUC is not a mean of independent per-row terms; its units are the rows' DeLong structural components
(``benchbed.stats.delong``): each positive's share of negatives scored lower, each negative's share of
positives scored higher. Their mean over positives is the AUC, and averaged over seeds they give the
components of the mean AUC.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchbed.errors import ConfigError, DataError
from benchbed.results.record import RunRecord

UNIT_KINDS = {"ctr": "users", "topk": "users", "generative": "users", "item2text": "items"}
ROW_METRICS = ("auc", "logloss")  # CTR metrics whose unit is a row


@dataclass(frozen=True)
class Units:
    """One run's (or the seed mean's) per-unit values of one column."""

    column: str  # "subset/metric"
    kind: str  # "rows" | "users" | "items"
    keys: np.ndarray  # sorted unit keys (row index, user id or item id), int64
    values: np.ndarray  # one value per key
    weights: np.ndarray | None = None  # GAUC: each user's positives
    labels: np.ndarray | None = None  # AUC: the row's 0/1 label (values are DeLong components)

    @property
    def metric(self) -> str:
        return self.column.rpartition("/")[2]

    @property
    def mean(self) -> float:
        """The column's value: the (weighted) mean over units; for AUC the mean component of positives."""
        if self.labels is not None:
            return float(self.values[self.labels == 1].mean())
        if self.weights is not None:
            return float(self.values @ self.weights / self.weights.sum())
        return float(self.values.mean())


def split_subset(subset: str) -> tuple[str, str]:
    """A record subset name -> (template, part): ``warm`` -> (seen, warm), ``unseen`` -> (unseen, all),
    ``unseen:cold`` -> (unseen, cold), ``seen`` -> (seen, all); item-to-text parts may be a sub-task."""
    if subset == "seen":
        return "seen", "all"
    if subset == "unseen":
        return "unseen", "all"
    template, sep, part = subset.partition(":")
    return (template, part) if sep else ("seen", subset)


def _template_rows(predictions: pd.DataFrame, column: str, template: str) -> pd.DataFrame:
    part = predictions[predictions["template"] == template] if "template" in predictions else predictions
    if not len(part):
        raise ConfigError(f"column {column!r}: the predictions have no rows for template {template!r}")
    return part


def _warm_mask(part: pd.DataFrame, column: str, which: str) -> np.ndarray:
    if which == "all":
        return np.ones(len(part), dtype=bool)
    if which not in ("warm", "cold"):
        raise ConfigError(f"column {column!r}: unknown subset part {which!r} (all, warm, cold)")
    flags = part["warm"]
    if flags.isna().any():
        raise ConfigError(f"column {column!r}: these predictions have no warm/cold flags")
    warm = flags.to_numpy(dtype=bool)
    return warm if which == "warm" else ~warm


def _sorted(keys: np.ndarray, *arrays: np.ndarray | None) -> tuple[np.ndarray | None, ...]:
    order = np.argsort(keys, kind="stable")
    return (keys[order], *(None if a is None else a[order] for a in arrays))


def ctr_units(predictions: pd.DataFrame, column: str) -> Units:
    """CTR: AUC per row (DeLong components), LogLoss per row, UAUC / GAUC / NDCG per user."""
    from benchbed.metrics import gauc, logloss, uauc, user_ndcg
    from benchbed.stats.delong import structural_components

    subset, _, metric = column.rpartition("/")
    template, which = split_subset(subset)
    part = _template_rows(predictions, column, template)
    rows = part[_warm_mask(part, column, which)]
    if not len(rows):
        raise ConfigError(f"column {column!r}: no rows in this subset")
    y = rows["label"].to_numpy(dtype=np.float64)
    users = rows["user"].to_numpy(dtype=np.int64)
    row_keys = rows["row"].to_numpy(dtype=np.int64)
    if metric == "auc":
        comp = structural_components(y, rows["score"].to_numpy(dtype=np.float64))[0]
        values = np.empty(len(rows))
        values[y == 1], values[y == 0] = comp.v10, comp.v01
        keys, vals, labels = _sorted(row_keys, values, y.astype(np.int8))
        return Units(column, "rows", keys, vals, labels=labels)  # type: ignore[arg-type]
    if metric == "logloss":
        probs = rows["prob"].to_numpy(dtype=np.float64)
        if np.isnan(probs).any():
            raise ConfigError(f"column {column!r}: the method's scores are not probabilities (no LogLoss)")
        keys, vals = _sorted(row_keys, logloss(y, probs).per_unit)
        return Units(column, "rows", keys, vals)  # type: ignore[arg-type]
    scores = rows["score"].to_numpy(dtype=np.float64)
    ids = np.unique(users)
    if metric in ("uauc", "gauc"):
        mv = uauc(users, y, scores) if metric == "uauc" else gauc(users, y, scores)
        pos = np.bincount(np.searchsorted(ids, users), weights=y, minlength=ids.size)
        size = np.bincount(np.searchsorted(ids, users), minlength=ids.size)
        valid = (pos > 0) & (pos < size)  # single-class users have no AUC (skipped by both metrics)
        weights = pos[valid] if metric == "gauc" else None
        return Units(column, "users", ids[valid], np.asarray(mv.per_unit), weights)
    if metric == "ndcg":
        mv = user_ndcg(users, y, scores)
        pos = np.bincount(np.searchsorted(ids, users), weights=y, minlength=ids.size)
        return Units(column, "users", ids[pos > 0], np.asarray(mv.per_unit))
    raise ConfigError(
        f"column {column!r}: CTR has no per-unit form of {metric!r} (auc, uauc, gauc, ndcg, logloss)"
    )


def topk_units(predictions: pd.DataFrame, column: str) -> Units:
    """Top-K: every metric@k per user with a positive in the subset (warm/cold: the other positives are
    dropped from the ranked list, as the task does)."""
    from benchbed.metrics import hits_from_rankings, resolve
    from benchbed.tasks.subsets import drop_items

    subset, _, metric = column.rpartition("/")
    template, which = split_subset(subset)
    k = _ranking_metric(column, metric)
    part = _template_rows(predictions, column, template)
    ranked = np.stack([np.asarray(r, dtype=np.int64) for r in part["ranked"]])
    pos = [np.asarray(p, dtype=np.int64) for p in part["positives"]]
    if which == "all":
        mine = pos
    else:
        if which not in ("warm", "cold"):
            raise ConfigError(f"column {column!r}: unknown subset part {which!r} (all, warm, cold)")
        warm = [np.asarray(w, dtype=bool) for w in part["positive_warm"]]
        if not any(len(w) for w in warm):
            raise ConfigError(f"column {column!r}: these predictions have no warm/cold flags")
        keep = [w if which == "warm" else ~w for w in warm]
        mine = [p[k] for p, k in zip(pos, keep, strict=True)]
        ranked = drop_items(ranked, [p[~k] for p, k in zip(pos, keep, strict=True)])
    hits = hits_from_rankings(ranked, mine)
    n_pos = np.array([len(m) for m in mine], dtype=np.int64)
    value = resolve(metric).fn(hits, n_pos, k)
    users = part["user"].to_numpy(dtype=np.int64)[n_pos > 0]
    keys, vals = _sorted(users, value.per_unit)
    return Units(column, "users", keys, vals)  # type: ignore[arg-type]


def _ranking_metric(column: str, metric: str) -> int:
    from benchbed.metrics import resolve

    try:
        rm = resolve(metric)
    except Exception as exc:
        raise ConfigError(f"column {column!r}: unknown metric {metric!r}") from exc
    if rm.k is None or rm.meta.get("kind") != "ranking":
        raise ConfigError(f"column {column!r}: {metric!r} is not a ranking metric@k")
    return rm.k


def generative_units(predictions: pd.DataFrame, column: str) -> Units:
    """Generative: HR@k / NDCG@k per user (one target each), through the ranking metric functions."""
    from benchbed.metrics import hits_from_rankings, resolve

    subset, _, metric = column.rpartition("/")
    template, which = split_subset(subset)
    k = _ranking_metric(column, metric)
    part = _template_rows(predictions, column, template)
    part = part[_warm_mask(part, column, which)]
    if not len(part):
        raise ConfigError(f"column {column!r}: no rows in this subset")
    ranked = np.asarray(part["ranked"].tolist(), dtype=np.int64).reshape(len(part), -1)
    targets = part["item"].to_numpy(dtype=np.int64)
    hits = hits_from_rankings(ranked, [np.asarray([t]) for t in targets])
    value = resolve(metric).fn(hits, np.ones(len(part), dtype=np.int64), k)
    keys, vals = _sorted(part["user"].to_numpy(dtype=np.int64), value.per_unit)
    return Units(column, "users", keys, vals)  # type: ignore[arg-type]


def item2text_units(predictions: pd.DataFrame, column: str) -> Units:
    """Item-to-text: SC / attribute F1 per test item, weighted so that their mean is the record's number.

    The task reports the macro mean over sub-tasks of each sub-task's row mean (rows whose attribute F1 is
    undefined left out). That is a sum over rows of ``x / (T n_t)`` (T sub-tasks with a value, n_t rows
    with a value in sub-task t), so an item's unit value is ``N`` (items in the subset) times the sum over its
    rows: the mean over items is the macro mean, for any mix of sub-tasks per item. One sub-task's column
    (``describe``) is the plain per-item mean of that sub-task."""
    subset, _, metric = column.rpartition("/")
    if metric not in ("sc", "attr_f1"):
        raise ConfigError(f"column {column!r}: item-to-text tests sc and attr_f1 per item, not {metric!r}")
    template, which = split_subset(subset)
    part = _template_rows(predictions, column, template)
    if which in ("all", "warm", "cold"):
        rows = part[_warm_mask(part, column, which)] if which != "all" else part
    else:  # a sub-task column (describe, ...)
        rows = part[part["task"] == which]
    if not len(rows):
        raise ConfigError(f"column {column!r}: no rows in this subset")
    values = rows[metric].to_numpy(dtype=np.float64)
    has = ~np.isnan(values)
    tasks = rows["task"].to_numpy()
    per_task = pd.Series(has).groupby(tasks).sum()  # n_t: rows with a value per sub-task
    per_task = per_task[per_task > 0]
    if per_task.empty:
        raise ConfigError(f"column {column!r}: no row has a value")
    weight = np.where(has, 1.0 / (len(per_task) * per_task.reindex(tasks).fillna(np.inf).to_numpy()), 0.0)
    contribution = pd.Series(np.where(has, values, 0.0) * weight).groupby(rows["item"].to_numpy()).sum()
    contribution = contribution.sort_index()
    return Units(
        column,
        "items",
        contribution.index.to_numpy(dtype=np.int64),
        contribution.to_numpy(dtype=np.float64) * len(contribution),
    )


UNIT_FUNCTIONS = {
    "ctr": ctr_units,
    "topk": topk_units,
    "generative": generative_units,
    "item2text": item2text_units,
}


def units_for(task: str, predictions: pd.DataFrame, column: str) -> Units:
    """The per-unit values of ``column`` (``subset/metric``) for a task's predictions."""
    fn = UNIT_FUNCTIONS.get(task)
    if fn is None:
        raise ConfigError(f"task {task!r}: no per-unit metrics (known: {', '.join(UNIT_FUNCTIONS)})")
    if "/" not in column:
        column = f"all/{column}"
    try:
        return fn(predictions, column)
    except (KeyError, IndexError) as exc:  # a predictions frame without the task's columns
        raise DataError(f"column {column!r}: predictions lack what {task} needs ({exc})") from exc


def record_predictions(path: Path, record: RunRecord, *, verify_keys: bool = True) -> pd.DataFrame:
    """A record's predictions, refused (one line, exit 2) when absent or not covering the record's rows.

    ``verify_keys=False`` (the leaderboard, which reads every row's files) compares the row count only, not
    the row-key checksum (~0.1 s a file); :func:`record_units` still checks each value against the record."""
    from benchbed.results.store import coverage_problem, read_predictions

    if not record.predictions:
        raise ConfigError(f"{path}: the run saved no predictions (save_predictions was off); nothing to test")
    predictions = read_predictions(path, record)
    rows = (record.predictions_check or {}).get("rows")
    if not verify_keys:
        if rows is not None and rows != len(predictions):
            raise ConfigError(
                f"{path}: the predictions have {len(predictions)} row(s), the record was computed on {rows}; "
                "no test on these predictions"
            )
        return predictions
    problem = coverage_problem(record, predictions)
    if problem is not None and record.task == "item2text" and "no predicted column" in problem:
        # item-to-text predicts text ("generated"), which store.PREDICTED_COLUMNS does not list (and its
        # stored row-key checksum covers that text): the row count matched; record_units checks the value
        problem = None
    if problem is not None:
        raise ConfigError(f"{path}: {problem}; no test on these predictions")
    return predictions


def record_units(
    path: Path,
    record: RunRecord,
    column: str,
    predictions: pd.DataFrame | None = None,
    *,
    verify_keys: bool = True,
) -> Units:
    """``column``'s units from a record's predictions (read and checked unless given), refused when their
    mean is not the value the record stores (then they are not this record's predictions)."""
    if predictions is None:
        predictions = record_predictions(path, record, verify_keys=verify_keys)
    units = units_for(record.task, predictions, column)
    subset, _, metric = units.column.rpartition("/")
    stored = record.metrics.get(subset, {}).get(metric)
    if stored is not None and abs(units.mean - stored) > 1e-9 * max(1.0, abs(stored)):
        raise ConfigError(
            f"{path}: the predictions give {units.column} = {units.mean:.6g} but the record has "
            f"{stored:.6g}; they are not this record's predictions"
        )
    return units


def seed_mean(runs: list[Units]) -> Units:
    """Each unit's mean over seeds; the seeds must cover the same units (and, for AUC, the same labels)."""
    first = runs[0]
    for other in runs[1:]:
        if not np.array_equal(first.keys, other.keys) or (
            first.labels is not None
            and (other.labels is None or not np.array_equal(first.labels, other.labels))
        ):
            raise DataError(f"column {first.column!r}: the seeds were evaluated on different units")
    if len(runs) == 1:
        return first
    values = np.mean([r.values for r in runs], axis=0)
    return Units(first.column, first.kind, first.keys, values, first.weights, first.labels)


def align(a: Units, b: Units) -> None:
    """Refuse two unit sets that are not the same units (a paired test needs every unit in both)."""
    if a.keys.shape != b.keys.shape or not np.array_equal(a.keys, b.keys):
        shared = np.intersect1d(a.keys, b.keys).size
        raise DataError(
            f"column {a.column!r}: the runs have {a.keys.size} and {b.keys.size} {a.kind}, {shared} shared; "
            "a paired test needs the same units"
        )
    if a.labels is not None and b.labels is not None and not np.array_equal(a.labels, b.labels):
        raise DataError(f"column {a.column!r}: the runs' rows carry different labels")
    if a.weights is not None and b.weights is not None and not np.array_equal(a.weights, b.weights):
        raise DataError(f"column {a.column!r}: the runs weight their units differently")
