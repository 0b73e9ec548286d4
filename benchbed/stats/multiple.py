"""Adjusted p-values for several comparisons on one board: Holm (family-wise error) and Benjamini-Hochberg
(false discovery rate), as R's ``p.adjust`` defines them.

Holm (1979): sort ascending, multiply the i-th smallest (1-based) by (m - i + 1), carry the running maximum,
cap at 1. Controls the family-wise error rate under any dependence, and is never less powerful than
Bonferroni; the default, because a board compares every row with the same best row (dependent tests).
Benjamini & Hochberg (1995): multiply the i-th smallest by m / i, carry the running minimum from the largest,
cap at 1. Controls the false discovery rate (independent or positively dependent tests).
"""

from __future__ import annotations

import numpy as np

from benchbed.errors import ConfigError

CORRECTIONS = ("holm", "bh", "none")


def _as_p(p_values: object) -> np.ndarray:
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ConfigError("p-values must lie in [0, 1]")
    return p


def holm(p_values: object) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order."""
    p = _as_p(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def benjamini_hochberg(p_values: object) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (q-values), in the input order."""
    p = _as_p(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")[::-1]  # largest first
    ranks = m - np.arange(m)  # 1-based rank of each, largest first
    adjusted = np.minimum(1.0, np.minimum.accumulate(p[order] * m / ranks))
    out = np.empty(m)
    out[order] = adjusted
    return out


def adjust(p_values: object, method: str) -> np.ndarray:
    """``holm`` | ``bh`` | ``none``."""
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "none":
        return _as_p(p_values)
    raise ConfigError(f"--correction: expected one of {', '.join(CORRECTIONS)}, got {method!r}")
