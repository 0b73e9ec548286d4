"""How a failed run is told: the one-line error a record keeps; numerical failures name the parameter."""

from __future__ import annotations

import re

import numpy as np

from benchbed.api import BaseRecommender
from benchbed.config import RunConfig
from benchbed.errors import BenchbedError


def one_line(exc: BaseException) -> str:
    """The error a record keeps: BenchbedError messages as they are, others with their type."""
    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, SIGTERM or SIGHUP: which one, when known
        from benchbed.orchestration.signals import describe

        return describe(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, BenchbedError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class NumericalError(BenchbedError):
    """A method's arithmetic failed (singular matrix, overflow, NaN loss) for the parameters given."""


NUMERICAL = (np.linalg.LinAlgError, FloatingPointError, OverflowError, ZeroDivisionError)
# parameters that usually decide whether the arithmetic holds: regularisation, rates, scales
SENSITIVE = re.compile(
    r"(.*_)?(reg|lam|lambda(_.*)?|alpha|weight_decay|lr|learning_rate|tau|temperature|prior_strength)"
)


def numerical_error(config: RunConfig, method: BaseRecommender, exc: BaseException) -> NumericalError | None:
    """``exc`` as a one-line error naming the parameter to change, when it is a numerical failure."""
    nan_loss = isinstance(exc, (RuntimeError, ValueError)) and re.search(r"\b(nan|inf)\b", str(exc), re.I)
    if not isinstance(exc, NUMERICAL) and not nan_loss:
        return None
    given = dict(config.method_params)
    candidates = [k for k in given if SENSITIVE.fullmatch(k)] or [
        k for k, v in given.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    defaults = type(method).defaults
    if candidates:
        change = ", ".join(f"{k}={given[k]!r} (default {defaults.get(k)!r})" for k in candidates)
    else:
        names = [k for k in method.params if SENSITIVE.fullmatch(k)]
        change = ", ".join(names) if names else "its parameters"
    err = NumericalError(
        f"method {config.method!r} failed numerically ({one_line(exc)}); change {change} and run again"
    )
    err.__cause__ = exc
    return err
