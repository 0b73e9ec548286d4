"""Paired tests of two runs' per-unit values (users, rows or items): Fisher's randomisation test, paired t,
Wilcoxon signed-rank, and a paired bootstrap CI of the mean difference.

Every function takes the per-unit differences ``d = a - b`` of units both runs share (optionally weighted,
for GAUC's positives-weighted mean) and is vectorised with numpy: no Python loop over units, and the
randomisation test's 10,000 draws are chunked sign-flip matrices multiplied by ``d`` (one BLAS call per
chunk). Randomisation and bootstrap are seeded, so a leaderboard shows the same p-value every time.

Randomisation (Fisher 1935; Smucker, Allan & Carterette 2007 recommend it for IR metrics): under H0 each
unit's two values are exchangeable, so each difference's sign is a fair coin. Exact (all 2^n sign vectors)
when 2^n <= draws, otherwise Monte Carlo with the (1 + hits) / (1 + draws) correction (Phipson & Smyth 2010),
which never reports p = 0 for a finite number of draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
from scipy import stats

from benchbed.errors import DataError

DEFAULT_DRAWS = 10_000
# resamples behind a percentile CI reported next to a test's p-value (Efron & Tibshirani 1993, 13.3: 1,000
# to 2,000 suffice for a 95% percentile interval); --test bootstrap's own p uses ``draws``
CI_DRAWS = 2_000
CHUNK_ELEMENTS = 4_000_000  # sign-flip / resample entries per chunk: ~32 MB of float64


@dataclass(frozen=True)
class PairedResult:
    """One paired comparison of a (the first run) against b: ``difference = a - b``."""

    test: str
    n: int
    a: float
    b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float | None = None


def _as_pair(
    a: object, b: object, weights: object | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise DataError(f"paired test: {x.size} and {y.size} values; the units must be the same")
    if x.size == 0:
        raise DataError("paired test: no units to compare")
    if np.isnan(x).any() or np.isnan(y).any():
        raise DataError("paired test: a per-unit value is NaN")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != x.shape or (w < 0).any() or w.sum() <= 0:
        raise DataError("paired test: weights must be non-negative, one per unit, not all zero")
    return x, y, w


def _wmean(values: np.ndarray, w: np.ndarray) -> float:
    return float(values @ w / w.sum())


def _chunks(draws: int, n: int) -> list[int]:
    size = max(1, CHUNK_ELEMENTS // max(n, 1))
    return [min(size, draws - s) for s in range(0, draws, size)]


def randomisation_p(d: np.ndarray, w: np.ndarray, draws: int = DEFAULT_DRAWS, seed: int = 0) -> float:
    """Two-sided p of the weighted mean difference under random sign flips (exact when 2^n <= draws)."""
    wd = d * w
    total = float(wd.sum())
    scale = float(np.abs(wd).sum())
    if scale == 0.0:
        return 1.0
    tol = 1e-9 * scale  # sums of the same terms in another order: equal values must count as ties
    n = d.size
    if n < 63 and 2**n <= draws:  # every sign vector once: the exact permutation distribution
        masks = (np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n, dtype=np.int64)) & 1
        flipped = total - 2.0 * (masks.astype(np.float64) @ wd)
        return float(np.mean(np.abs(flipped) >= abs(total) - tol))
    rng = np.random.default_rng(seed)
    hits = 0
    nbytes = (n + 7) // 8
    for size in _chunks(draws, n):
        bits = np.unpackbits(rng.integers(0, 256, size=(size, nbytes), dtype=np.uint8), axis=1)[:, :n]
        flipped = total - 2.0 * (bits.astype(np.float64) @ wd)  # flip the sign of the units whose bit is 1
        hits += int(np.count_nonzero(np.abs(flipped) >= abs(total) - tol))
    return (1 + hits) / (1 + draws)


def bootstrap_means(d: np.ndarray, w: np.ndarray, draws: int = DEFAULT_DRAWS, seed: int = 0) -> np.ndarray:
    """The weighted mean of ``d`` over ``draws`` resamples of the units with replacement."""
    rng = np.random.default_rng(seed)
    n = d.size
    uniform = bool(np.all(w == w[0]))
    wd = d * w
    out = []
    for size in _chunks(draws, n):
        idx = rng.integers(0, n, size=(size, n), dtype=np.int32 if n < 2**31 else np.int64)
        out.append(d[idx].mean(axis=1) if uniform else wd[idx].sum(axis=1) / w[idx].sum(axis=1))
    return np.concatenate(out)


def bootstrap_ci(
    d: np.ndarray, w: np.ndarray, draws: int = DEFAULT_DRAWS, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of the weighted mean difference (paired: units are resampled with both values)."""
    means = bootstrap_means(d, w, draws, seed)
    lo, hi = np.quantile(means, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return float(lo), float(hi)


Outcome = tuple[float, float, float, float]  # difference, CI low, CI high, p


def _randomisation(d: np.ndarray, w: np.ndarray, draws: int, seed: int, level: float) -> Outcome:
    """Fisher's paired randomisation test of the (weighted) mean difference, with a paired bootstrap CI
    (``CI_DRAWS`` resamples): (difference, CI low, CI high, p)."""
    lo, hi = bootstrap_ci(d, w, min(draws, CI_DRAWS), seed, level)
    return _wmean(d, w), lo, hi, randomisation_p(d, w, draws, seed)


def _bootstrap(d: np.ndarray, w: np.ndarray, draws: int, seed: int, level: float) -> Outcome:
    """Paired bootstrap: percentile CI, and the p of the null-centred resampled means (Efron & Tibshirani
    1993, 16.4): how often a resample strays from the observed mean by at least the observed mean."""
    diff = _wmean(d, w)
    means = bootstrap_means(d, w, draws, seed)
    lo, hi = np.quantile(means, [0.5 - level / 2.0, 0.5 + level / 2.0])
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    p = 1.0 if abs(diff) <= tol else (1 + int(np.sum(np.abs(means - diff) >= abs(diff)))) / (1 + draws)
    return diff, float(lo), float(hi), p


RESAMPLING_TESTS = {"randomisation": _randomisation, "bootstrap": _bootstrap}


def resampling_test(
    test: Literal["randomisation", "bootstrap"],
    a: object,
    b: object,
    weights: object | None = None,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    level: float = 0.95,
) -> PairedResult:
    """A seeded resampling test (``RESAMPLING_TESTS``) of the (weighted) mean of ``a - b``: the two take
    the same arguments and read the same per-unit differences; they differ only in how p and the CI come."""
    x, y, w = _as_pair(a, b, weights)
    diff, lo, hi, p = RESAMPLING_TESTS[test](x - y, w, draws, seed, level)
    return PairedResult(test, x.size, _wmean(x, w), _wmean(y, w), diff, lo, hi, p)


# the public names of the two tests: ``randomisation_test(a, b, weights=None, draws=..., seed=0, level=0.95)``
randomisation_test = partial(resampling_test, "randomisation")
bootstrap_test = partial(resampling_test, "bootstrap")


def _constant_difference(test: str, x: np.ndarray, y: np.ndarray, d: np.ndarray) -> PairedResult | None:
    """Every unit differs by the same amount (zero variance): t and Wilcoxon are undefined; say what the
    data say: p = 1 when that amount is 0, else 0 (no sampling noise at all)."""
    if d.size and np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):
        diff = float(d.mean())
        p = 1.0 if abs(diff) <= 1e-12 else 0.0
        return PairedResult(test, x.size, float(x.mean()), float(y.mean()), diff, diff, diff, p, None)
    return None


def paired_t_test(a: object, b: object, level: float = 0.95) -> PairedResult:
    """Student's paired t (``scipy.stats.ttest_rel``) with its t-based CI of the mean difference."""
    x, y, _ = _as_pair(a, b)
    d = x - y
    constant = _constant_difference("t", x, y, d)
    if constant is not None:
        return constant
    if x.size < 2:
        raise DataError("paired t: needs at least 2 units")
    res = stats.ttest_rel(x, y)
    ci = res.confidence_interval(level)
    return PairedResult(
        "t", x.size, float(x.mean()), float(y.mean()), float(d.mean()), float(ci.low), float(ci.high),
        float(res.pvalue), float(res.statistic),
    )  # fmt: skip


def wilcoxon_test(
    a: object, b: object, draws: int = DEFAULT_DRAWS, seed: int = 0, level: float = 0.95
) -> PairedResult:
    """Wilcoxon signed-rank (``scipy.stats.wilcoxon``, zero differences dropped as Wilcoxon did), with a
    paired bootstrap CI of the mean difference (the test itself is about the median of the differences)."""
    x, y, w = _as_pair(a, b)
    d = x - y
    constant = _constant_difference("wilcoxon", x, y, d)
    if constant is not None:
        return constant
    nonzero = d[d != 0]
    res = stats.wilcoxon(nonzero, zero_method="wilcox")
    lo, hi = bootstrap_ci(d, w, min(draws, CI_DRAWS), seed, level)
    return PairedResult(
        "wilcoxon", x.size, float(x.mean()), float(y.mean()), float(d.mean()), lo, hi, float(res.pvalue),
        float(res.statistic),
    )  # fmt: skip


def bootstrap_auc_difference(
    labels: object, scores_a: object, scores_b: object, draws: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Stratified paired bootstrap of AUC(a) - AUC(b) (rows resampled within each class, both models on the
    same resample, as pROC's ``roc.test(method="bootstrap")``): returns (difference, bootstrap s.e., the
    two-sided normal p of difference / s.e.). A cross-check of DeLong, vectorised over resamples."""
    y = np.asarray(labels).reshape(-1)
    s = np.vstack([np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)])
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        raise DataError("bootstrap AUC: needs both positive and negative rows")

    def aucs(rows: np.ndarray) -> np.ndarray:  # rows: (draws, m + n), positives first
        out = []
        for model in s:
            ranks = stats.rankdata(model[rows], axis=1)
            out.append((ranks[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n))
        return out[0] - out[1]

    observed = float(aucs(np.concatenate([pos, neg])[None, :])[0])
    rng = np.random.default_rng(seed)
    diffs = []
    for size in _chunks(draws, m + n):
        rows = np.concatenate([rng.choice(pos, (size, m)), rng.choice(neg, (size, n))], axis=1)
        diffs.append(aucs(rows))
    se = float(np.concatenate(diffs).std(ddof=1))
    p = 1.0 if se == 0 and observed == 0 else float(2 * stats.norm.sf(abs(observed) / se)) if se else 0.0
    return observed, se, p
