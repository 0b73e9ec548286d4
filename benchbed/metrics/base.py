"""The value every metric returns, and input checks shared by the metric modules."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchbed.errors import DataError


@dataclass(frozen=True)
class MetricValue:
    """A metric's value and how many units (users or rows, per the metric's docstring) produced it.

    ``n == 0`` means the metric is undefined on this input (no qualifying user or row) and ``value`` is NaN,
    so a subset without positives shows as an empty cell instead of a misleading zero.
    """

    value: float
    n: int
    # the value of each unit averaged over (users or rows, in the metric's order; None where not kept):
    # what the paired tests of benchbed.stats compare between two runs
    per_unit: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __float__(self) -> float:
        return self.value


UNDEFINED = MetricValue(float("nan"), 0)


def as_1d(name: str, values: object, length: int | None = None) -> np.ndarray:
    """``values`` as a 1-D array, with a one-line error naming the argument when the shape is wrong."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"metric input {name!r} must be 1-D, got shape {arr.shape}")
    if length is not None and len(arr) != length:
        raise DataError(f"metric input {name!r} has {len(arr)} entries, expected {length}")
    return arr


def binary_labels(labels: object) -> np.ndarray:
    """Labels as float64 0/1; else an error: graded or -1 (implicit) labels are no CTR labels."""
    arr = as_1d("labels", labels)
    out = arr.astype(np.float64, copy=False)
    if out.size and not np.all((out == 0) | (out == 1)):
        bad = np.unique(out[(out != 0) & (out != 1)])[:5]
        raise DataError(f"metric input 'labels' must be 0/1, found values {bad.tolist()}")
    return out


def finite_scores(name: str, scores: object, length: int | None = None) -> np.ndarray:
    """Scores as float64; NaN is rejected because it has no place in an order (±inf is allowed)."""
    arr = as_1d(name, scores, length).astype(np.float64, copy=False)
    if np.isnan(arr).any():
        raise DataError(f"metric input {name!r} contains NaN ({int(np.isnan(arr).sum())} entries)")
    return arr
