"""DeLong's paired test for two ROC-AUCs on the same rows, in the fast midrank form.

DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two or more correlated receiver operating
characteristic curves: a nonparametric approach", Biometrics 44(3). The AUC is a two-sample U-statistic; its
*structural components* are each positive's share of negatives scored below it (``v10``, ties count 1/2) and
each negative's share of positives scored above it (``v01``). Both average to the AUC, and the covariance of
two AUCs on the same rows is ``cov(v10_a, v10_b) / m + cov(v01_a, v01_b) / n``.

Sun & Xu (2014), "Fast implementation of DeLong's algorithm for comparing the areas under correlated receiver
operating characteristic curves", IEEE Signal Processing Letters 21(11): the components come from three
midrank vectors (all rows, positives only, negatives only), so the test costs O(N log N) instead of the
O(m·n) of comparing every positive with every negative (:func:`structural_components_direct`, kept as the
reference the fast form is tested against).

Components are per row, so they also average over seeds: the mean AUC over seeds has as components each row's
mean component (:func:`delong_from_components`), which is how the leaderboard tests rows with several seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from benchbed.errors import DataError


@dataclass(frozen=True)
class Components:
    """A run's structural components: ``v10`` per positive row, ``v01`` per negative row (same row order
    as given). ``auc`` is their common mean."""

    v10: np.ndarray
    v01: np.ndarray

    @property
    def auc(self) -> float:
        return float(self.v10.mean())


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).reshape(-1)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2 or s.shape[1] != y.shape[0]:
        raise DataError(f"DeLong: scores of shape {s.shape} do not match {y.shape[0]} labels")
    if not np.all((y == 0) | (y == 1)):
        raise DataError("DeLong: labels must be 0/1")
    if np.isnan(s).any():
        raise DataError("DeLong: scores contain NaN")
    pos = y == 1
    if pos.all() or not pos.any():
        raise DataError("DeLong: AUC needs both positive and negative rows")
    return pos, s


def structural_components(labels: object, scores: object) -> list[Components]:
    """Fast midrank form (Sun & Xu 2014) for one or several score vectors (rows of a 2-D array) on the same
    labels; vectorised over models and rows (``scipy.stats.rankdata`` along an axis)."""
    pos, s = _check(np.asarray(labels), np.asarray(scores))
    x, y = s[:, pos], s[:, ~pos]
    m, n = x.shape[1], y.shape[1]
    tz = stats.rankdata(np.concatenate([x, y], axis=1), axis=1)  # midranks among all rows
    tx = stats.rankdata(x, axis=1)  # among positives
    ty = stats.rankdata(y, axis=1)  # among negatives
    v10 = (tz[:, :m] - tx) / n  # negatives below each positive (ties 1/2)
    v01 = 1.0 - (tz[:, m:] - ty) / m  # positives above each negative (ties 1/2)
    return [Components(v10[i], v01[i]) for i in range(s.shape[0])]


def structural_components_direct(labels: object, scores: object) -> Components:
    """The definition, O(m·n): psi(x, y) = 1 if x > y, 1/2 if equal, 0 else, for every (positive, negative)
    pair. A reference for tests and the benchmark; use :func:`structural_components`."""
    pos, s = _check(np.asarray(labels), np.asarray(scores))
    x, y = s[0, pos], s[0, ~pos]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    return Components(psi.mean(axis=1), psi.mean(axis=0))


def mean_components(runs: list[Components]) -> Components:
    """Each row's component averaged over runs (seeds) of one method on the same rows."""
    if not runs:
        raise DataError("DeLong: no runs to average")
    return Components(np.mean([r.v10 for r in runs], axis=0), np.mean([r.v01 for r in runs], axis=0))


@dataclass(frozen=True)
class DeLongResult:
    auc_a: float
    auc_b: float
    difference: float  # a - b
    se: float
    z: float
    p_value: float  # two-sided
    ci_low: float  # of the difference
    ci_high: float
    n_pos: int
    n_neg: int


def delong_from_components(a: Components, b: Components, level: float = 0.95) -> DeLongResult:
    """The paired test of AUC(a) - AUC(b) from both runs' components on the same rows (same order)."""
    if a.v10.shape != b.v10.shape or a.v01.shape != b.v01.shape:
        raise DataError("DeLong: the two runs' components are not on the same rows")
    m, n = a.v10.size, a.v01.size
    d10, d01 = a.v10 - b.v10, a.v01 - b.v01  # var(a - b) = var_a + var_b - 2 cov_ab, per component set
    var = (d10.var(ddof=1) if m > 1 else 0.0) / m + (d01.var(ddof=1) if n > 1 else 0.0) / n
    diff = a.auc - b.auc
    se = float(np.sqrt(max(var, 0.0)))
    if se <= 1e-15 * max(1.0, abs(diff)):  # identical components: no evidence of any difference
        z, p = 0.0, 1.0
        if abs(diff) > 1e-12:
            z, p = float(np.sign(diff) * np.inf), 0.0
    else:
        z = diff / se
        p = float(2.0 * stats.norm.sf(abs(z)))
    half = float(stats.norm.ppf(0.5 + level / 2.0)) * se
    return DeLongResult(a.auc, b.auc, diff, se, float(z), p, diff - half, diff + half, m, n)


def delong_test(labels: object, scores_a: object, scores_b: object, level: float = 0.95) -> DeLongResult:
    """DeLong's test of two score vectors on the same labeled rows (fast midrank form)."""
    a, b = structural_components(labels, np.vstack([np.asarray(scores_a), np.asarray(scores_b)]))
    return delong_from_components(a, b, level)
