"""Helpers every task shares: subset masks and names, prompt templates, batching with progress.

Subsets (names used in records):
- ``all``: every evaluated row; ``warm`` / ``cold``: rows whose ``warm`` flag (from the split: user AND item
  seen at least ``warm_threshold`` times in train) is true / false. Without flags only ``all`` exists.
- For methods with ``uses_templates`` the test set is evaluated twice: template ``seen`` (the first
  training template) gives ``all``/``warm``/``cold`` plus ``seen`` (same rows as ``all``); template ``unseen``
  (held out from training) gives ``unseen``, ``unseen:warm``, ``unseen:cold``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from benchbed.api import BaseRecommender, RunContext
from benchbed.errors import DataError

BASE_SUBSETS = ("all", "warm", "cold")


def subset_masks(warm: np.ndarray | None, n: int) -> dict[str, np.ndarray]:
    """Boolean masks for ``all`` and, when flags exist, ``warm`` and ``cold``."""
    masks = {"all": np.ones(n, dtype=bool)}
    if warm is not None:
        w = np.asarray(warm, dtype=bool)
        masks["warm"] = w
        masks["cold"] = ~w
    return masks


def subset_name(template: str, subset: str) -> str:
    """Record key of ``subset`` evaluated with ``template``: ``warm`` / ``unseen:warm`` / ``unseen``."""
    if template == "seen":
        return subset
    return template if subset == "all" else f"{template}:{subset}"


def templates_for(method: Any, stage: str) -> list[str]:
    """Templates to evaluate: both for prompt methods on test, else only the first (seen) one."""
    if method.uses_templates and stage == "test" and getattr(method, "eval_unseen", True):
        return ["seen", "unseen"]
    return ["seen"]


def stage_frame(split: Any, stage: str) -> pd.DataFrame:
    if stage not in ("test", "valid"):
        raise DataError(f"evaluation stage must be 'test' or 'valid', got {stage!r}")
    return split.test if stage == "test" else split.valid


def overrides(method: Any, name: str) -> bool:
    """True when the method's class implements ``name`` itself instead of inheriting the base stub."""
    return getattr(type(method), name, None) is not getattr(BaseRecommender, name, None)


def warm_flags(frame: pd.DataFrame) -> np.ndarray | None:
    return frame["warm"].to_numpy(dtype=bool) if "warm" in frame.columns else None


def histories_of(frame: pd.DataFrame) -> list[list[int]]:
    """The ``history`` column as plain lists (parquet gives numpy arrays); empty lists when absent."""
    if "history" not in frame.columns:
        return [[] for _ in range(len(frame))]
    return [
        h if isinstance(h, list) else ([] if h is None else list(map(int, h)))
        for h in frame["history"].tolist()
    ]


def batches(n: int, size: int, ctx: RunContext, description: str) -> Iterator[slice]:
    """Slices of ``range(n)``; with a progress bar when the context logs and there is more than one batch."""
    size = max(1, int(size))
    starts = range(0, n, size)
    if ctx.log is None or len(starts) <= 1:
        for s in starts:
            yield slice(s, min(s + size, n))
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        job = progress.add_task(description, total=n)
        for s in starts:
            yield slice(s, min(s + size, n))
            progress.update(job, advance=min(size, n - s))


def check_scores(method: Any, scores: Any, n: int) -> np.ndarray:
    """A method's answer as a float64 (n,) array; wrong shape or NaN is the method's bug, said clearly."""
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    name = getattr(method, "name", type(method).__name__)
    if arr.shape[0] != n:
        raise DataError(f"method {name!r} returned {arr.shape[0]} scores for {n} requests")
    if np.isnan(arr).any():
        raise DataError(f"method {name!r} returned NaN for {int(np.isnan(arr).sum())} of {n} requests")
    return arr


def drop_items(ranked: np.ndarray, remove: list[np.ndarray]) -> np.ndarray:
    """Remove each row's ``remove`` items from its ranked list, keeping order; the tail is -1 padded."""
    from benchbed.metrics import hits_from_rankings

    ranked = np.asarray(ranked, dtype=np.int64)
    if ranked.size == 0 or not any(len(r) for r in remove):
        return ranked
    gone = hits_from_rankings(ranked, [np.asarray(r, dtype=np.int64) for r in remove])
    order = np.argsort(gone, axis=1, kind="stable")  # kept items (False) first, original order
    out = np.take_along_axis(ranked, order, axis=1)
    kept = (~gone).sum(axis=1)
    out[np.arange(out.shape[1])[None, :] >= kept[:, None]] = -1
    return out
