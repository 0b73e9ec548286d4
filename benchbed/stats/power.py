"""How small a difference a board could detect, and t-based intervals over seeds.

The minimum detectable difference (MDD) of a two-sided test at level alpha with power 1 - beta, for an
estimate with standard error ``se``, is ``(z_{1-alpha/2} + z_{1-beta}) * se`` (the normal approximation every
paired test here reduces to at a board's n: e.g. Cohen 1988, ch. 2). A board prints it from the observed
paired variance, so "no significant difference" can be read as "the difference, if any, is below this".
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def minimum_detectable_difference(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The true difference that a two-sided level-``alpha`` test of an estimate with s.e. ``se`` detects
    with probability ``power``."""
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)


def paired_se(differences: object, weights: object | None = None) -> float:
    """Standard error of the (weighted) mean of per-unit differences (weighted: the ratio estimator's
    linearised s.e.)."""
    d = np.asarray(differences, dtype=np.float64).reshape(-1)
    if d.size < 2:
        return math.nan
    if weights is None:
        return float(d.std(ddof=1) / math.sqrt(d.size))
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    mean = float(d @ w / w.sum())
    share = w / w.sum()
    return float(math.sqrt(d.size / (d.size - 1) * np.sum((share * (d - mean)) ** 2)))


def t_interval(values: object, level: float = 0.95) -> tuple[float, float] | None:
    """Student-t interval of the mean of a few values (seeds); None with fewer than two."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size < 2 or not np.isfinite(v).all():
        return None
    mean = float(v.mean())
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean - half, mean + half
