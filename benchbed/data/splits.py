"""Split protocols: which interactions go to train / valid / test.

Each protocol is a ``Protocol`` (registered in ``SPLITS`` by ``benchbed.data.catalog``) that returns row
positions into ``InteractionData.interactions``; ``benchbed.data.enrich`` then adds histories and warm/cold
flags and ``benchbed.data.leakage`` checks the result, identically for every protocol.

- ``temporal-window``: ``by="quantile"`` cuts the global time line at ``valid_quantile``/``test_quantile`` of
  the interactions (train < q0.8 <= valid < q0.9 <= test by default); ``by="month"`` keeps CoLLM's month
  windows (month index = months since ``month_origin``, windows inclusive, rows outside every window
  dropped); when ``valid_months == test_months`` that window is sorted by time and halved (first half valid),
  CoLLM's Amazon-Book December rule.
- ``leave-one-out``: per user in time order, last = test, second last = valid, rest = train; users with fewer
  than ``min_interactions`` (3) are dropped and counted.
- ``random-per-user``: per user, ``test_ratio``/``valid_ratio`` of the interactions (rounded, at least one
  each) drawn with ``seed``; the rest is train. Users below ``min_interactions`` are dropped and counted.

Every drawn protocol accepts the filters of ``benchbed.data.filters`` (``rating_above``, ``kcore``: CLLM4Rec's
"ratings > 3, then 5-core"), which ``benchbed.data.prepare`` applies before the protocol draws; they are left
out of the resolved parameters unless set.

Every protocol reads the interactions in time order with ties (same timestamp) broken by ``tie_break``:
``file`` (default) keeps the raw file's order, as RecBole's stable ``Interaction.sort`` and OpenP5 do, so
leave-one-out's test item is the user's last same-second interaction *in the file*; ``item`` is benchbed's
rule before data layer 2, (timestamp, user, item), which picks the highest item id among ties (on ml-100k
the less popular items: ``pop`` HR@10 0.050 instead of 0.086, issue 13).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from benchbed.data import filters
from benchbed.data.schema import InteractionData
from benchbed.errors import ConfigError
from benchbed.params import Param, check_value, specs_for

# Parameters every protocol accepts (used by enrich: history length and the warm threshold on train counts).
COMMON_DEFAULTS: dict[str, Any] = {"warm_threshold": 3, "history_len": 10, "tie_break": "file"}
TIE_BREAKS = ("file", "item")  # see the module docstring
COMMON_SPECS = {
    "tie_break": Param(kind="str", choices=TIE_BREAKS, help="order of same-timestamp rows"),
    "by": Param(kind="str", choices=("quantile", "month")),  # temporal-window
}


@dataclass
class Assignment:
    """Row positions of each part (into ``data.interactions``) and what the protocol dropped."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    """A named split protocol: its function, its parameter defaults, and whether time order is its promise."""

    name: str
    fn: Callable[[InteractionData, dict[str, Any]], Assignment]
    defaults: dict[str, Any]
    temporal: bool  # valid/test rows may not precede the train cut-off (checked by leakage)
    description: str = ""

    def resolve(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults overridden by ``params``; an unknown key is a ConfigError naming the known ones."""
        merged = {**COMMON_DEFAULTS, **self.defaults}
        known = set(merged) | set(filters.NEUTRAL)  # the filters are left out unless set (filters.py)
        unknown = sorted(set(params or {}) - known)
        if unknown:
            raise ConfigError(
                f"split {self.name!r}: unknown parameter(s) {unknown}; expected some of {sorted(known)}"
            )
        specs = {**specs_for(merged, COMMON_SPECS), **filters.FILTER_SPECS}
        for key, value in (params or {}).items():
            check_value(f"split {self.name!r}", key, value, specs[key])  # benchbed.params: types, ranges
        merged.update(filters.without_neutral(params or {}))
        for key in ("warm_threshold", "history_len"):
            if not isinstance(merged[key], int) or merged[key] < 0:
                raise ConfigError(f"split {self.name!r}: {key} must be an integer >= 0, got {merged[key]!r}")
        return merged

    def __call__(self, data: InteractionData, params: dict[str, Any]) -> Assignment:
        return self.fn(data, params)


def tie_order(data: InteractionData, params: dict[str, Any]) -> np.ndarray:
    """Row positions in the order protocols read them: time, then ``tie_break`` among equal timestamps.

    ``file``: the data's own order (preprocessing sorts by time stably, keeping the raw file's order);
    ``item``: (timestamp, user, item), the order before data layer 2."""
    n = len(data.interactions)
    if params.get("tie_break", "file") == "file":
        return np.arange(n)
    df = data.interactions
    return np.lexsort((df["item"].to_numpy(), df["user"].to_numpy(), df["timestamp"].to_numpy()))


def _window(params: dict[str, Any], key: str) -> tuple[int, int]:
    value = params.get(key)
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise ConfigError(f"split 'temporal-window': {key} must be [first_month, last_month], got {value!r}")
    return int(value[0]), int(value[1])


def month_index(timestamps: np.ndarray, origin: str) -> np.ndarray:
    """Months since ``origin`` ("YYYY-MM", UTC): CoLLM's ``(year-2000)*12 + month`` shifted so origin = 0."""
    try:
        o = pd.Timestamp(f"{origin}-01", tz="UTC")
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"split 'temporal-window': month_origin must look like '2000-04', got {origin!r}"
        ) from exc
    dt = pd.DatetimeIndex(pd.to_datetime(timestamps, unit="s", utc=True))
    return np.asarray((dt.year - o.year) * 12 + (dt.month - o.month), dtype=np.int64)


def temporal_window(data: InteractionData, params: dict[str, Any]) -> Assignment:
    order = tie_order(data, params)
    ts = data.interactions["timestamp"].to_numpy()[order]
    by = params["by"]
    if by == "quantile":
        q1, q2 = float(params["valid_quantile"]), float(params["test_quantile"])
        if not 0 < q1 < q2 < 1:
            raise ConfigError(
                f"split 'temporal-window': need 0 < valid_quantile < test_quantile < 1, got {q1}, {q2}"
            )
        ordered = np.sort(ts, kind="stable")
        t_valid, t_test = ordered[int(q1 * len(ts))], ordered[int(q2 * len(ts))]
        rows = order
        return Assignment(
            train=rows[ts < t_valid],
            valid=rows[(ts >= t_valid) & (ts < t_test)],
            test=rows[ts >= t_test],
            stats={"valid_from": int(t_valid), "test_from": int(t_test)},
        )
    if by != "month":
        raise ConfigError(f"split 'temporal-window': by must be 'quantile' or 'month', got {by!r}")
    if not params.get("month_origin"):
        raise ConfigError("split 'temporal-window': by='month' needs month_origin (e.g. '2000-04')")
    month = month_index(ts, str(params["month_origin"]))
    parts = {}
    for part in ("train", "valid", "test"):
        lo, hi = _window(params, f"{part}_months")
        parts[part] = np.flatnonzero((month >= lo) & (month <= hi))  # positions into ``order``
    stats: dict[str, Any] = {}
    if _window(params, "valid_months") == _window(params, "test_months"):
        window = parts["valid"]  # in time order, ties by tie_break
        half = len(window) // 2
        parts["valid"], parts["test"] = window[:half], window[half:]
        stats["holdout"] = "last window halved by time"
    elif len(np.intersect1d(parts["valid"], parts["test"])) or len(
        np.intersect1d(parts["train"], parts["valid"])
    ):
        raise ConfigError(
            "split 'temporal-window': month windows overlap; give disjoint windows or equal valid/test"
        )
    kept = len(parts["train"]) + len(parts["valid"]) + len(parts["test"])
    stats["outside_windows"] = int(len(ts) - kept)
    return Assignment(order[parts["train"]], order[parts["valid"]], order[parts["test"]], stats)


def _per_user(
    data: InteractionData, min_interactions: int, order: np.ndarray
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Rows of users with enough interactions, in ``order`` (time, ties by tie_break), with their count."""
    df = data.interactions[["user"]].iloc[order].reset_index(drop=True)
    df["row"] = order
    df["n"] = df.groupby("user")["user"].transform("size")
    small = df["n"] < min_interactions
    stats = {
        "users_dropped": int(df.loc[small, "user"].nunique()),
        "interactions_dropped": int(small.sum()),
    }
    return df[~small.to_numpy()].copy(), stats


def leave_one_out(data: InteractionData, params: dict[str, Any]) -> Assignment:
    df, stats = _per_user(data, int(params["min_interactions"]), tie_order(data, params))
    from_end = df.groupby("user").cumcount(ascending=False).to_numpy()
    rows = df["row"].to_numpy()
    return Assignment(
        train=rows[from_end >= 2], valid=rows[from_end == 1], test=rows[from_end == 0], stats=stats
    )


def random_per_user(data: InteractionData, params: dict[str, Any]) -> Assignment:
    v, t = float(params["valid_ratio"]), float(params["test_ratio"])
    if not (0 < v < 1 and 0 < t < 1 and v + t < 1):
        raise ConfigError(
            f"split 'random-per-user': need 0 < valid_ratio, test_ratio and their sum < 1, got {v}, {t}"
        )
    order = tie_order(data, params)
    df, stats = _per_user(data, max(3, int(params["min_interactions"])), order)
    rng = np.random.default_rng(int(params["seed"]))
    df["r"] = rng.random(len(df))
    rank = df.groupby("user")["r"].rank(method="first").to_numpy() - 1
    n = df["n"].to_numpy()
    n_test = np.maximum(1, np.floor(t * n + 0.5)).astype(np.int64)
    n_valid = np.maximum(1, np.floor(v * n + 0.5)).astype(np.int64)
    n_valid = np.minimum(n_valid, n - n_test - 1)  # keep at least one training item
    rows = df["row"].to_numpy()
    is_test = rank < n_test
    is_valid = ~is_test & (rank < n_test + n_valid)
    rank_of = np.empty(len(order), dtype=np.int64)
    rank_of[order] = np.arange(len(order))  # each part's rows in ``order`` (time, ties by tie_break)

    def in_order(part: np.ndarray) -> np.ndarray:
        return part[np.argsort(rank_of[part], kind="stable")]

    return Assignment(
        train=in_order(rows[~is_test & ~is_valid]),
        valid=in_order(rows[is_valid]),
        test=in_order(rows[is_test]),
        stats=stats,
    )


PROTOCOLS: tuple[Protocol, ...] = (
    Protocol(
        "temporal-window",
        temporal_window,
        {
            "by": "quantile",
            "valid_quantile": 0.8,
            "test_quantile": 0.9,
            "month_origin": None,
            "train_months": None,
            "valid_months": None,
            "test_months": None,
        },
        temporal=True,
        description="global time cut (quantiles) or CoLLM month windows",
    ),
    Protocol(
        "leave-one-out",
        leave_one_out,
        {"min_interactions": 3},
        temporal=False,
        description="per user: last = test, second last = valid (OpenP5, RA-Rec, ILM)",
    ),
    Protocol(
        "random-per-user",
        random_per_user,
        {"seed": 0, "valid_ratio": 0.1, "test_ratio": 0.1, "min_interactions": 3},
        temporal=False,
        description="per user random 80/10/10, at least one valid and test item (CLLM4Rec)",
    ),
)
