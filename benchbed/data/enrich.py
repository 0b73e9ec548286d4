"""What every protocol's frames get, built once so every method sees the same thing.

- ``history``: the user's positive items strictly earlier in time (timestamp <) than the row, over all rows
  the split keeps (train + valid + test, CoLLM's rule: a test row may see earlier valid/test positives),
  oldest first, the last ``history_len``. Positives are ``label == 1``; on implicit data (label -1) every
  interaction.
  Equal timestamps do not count as earlier: ml-100k users rate many movies in the same second.
- warm/cold flags on valid and test rows from train counts: ``user_warm`` / ``item_warm`` = at least
  ``warm_threshold`` train interactions (3 as in the CoLLM paper; 1 = its code's ``not_cold``), ``warm`` =
  both, ``item_unseen`` = the item never occurs in train.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchbed.data.cache import paused_gc
from benchbed.data.schema import HISTORY_COLUMN, InteractionData


def positive_mask(frame: pd.DataFrame) -> np.ndarray:
    label = frame["label"].to_numpy()
    return np.asarray((label == 1) | (label < 0))


def build_histories(rows: pd.DataFrame, history_len: int) -> list[list[int]]:
    """For each row of ``rows`` (user, item, label, timestamp), the last N earlier positives of its user."""
    users = rows["user"].to_numpy(np.int64)
    ts = rows["timestamp"].to_numpy(np.int64)
    if len(rows) == 0 or history_len == 0:
        return [[] for _ in range(len(rows))]
    t0 = int(ts.min())
    span = int(ts.max()) - t0 + 2
    keys = users * span + (ts - t0 + 1)
    pos = positive_mask(rows)
    order = np.argsort(keys[pos], kind="stable")
    pos_keys = keys[pos][order]
    pos_items = rows["item"].to_numpy(np.int64)[pos][order]
    end = np.searchsorted(pos_keys, keys, side="left")
    start = np.maximum(np.searchsorted(pos_keys, users * span, side="left"), end - history_len)
    flat = pos_items.tolist()
    with paused_gc():
        return [flat[s:e] for s, e in zip(start.tolist(), end.tolist(), strict=True)]


def add_histories(frames: dict[str, pd.DataFrame], history_len: int) -> None:
    """Set ``history`` on every frame in place, computed over the union of the frames."""
    union = pd.concat([f[["user", "item", "label", "timestamp"]] for f in frames.values()], ignore_index=True)
    hist = build_histories(union, history_len)
    offset = 0
    for frame in frames.values():
        frame[HISTORY_COLUMN] = pd.Series(hist[offset : offset + len(frame)], index=frame.index, dtype=object)
        offset += len(frame)


def add_flags(frame: pd.DataFrame, train: pd.DataFrame, data: InteractionData, threshold: int) -> None:
    """Warm/cold flags of ``frame``'s rows from train counts (in place)."""
    ucount = np.bincount(train["user"].to_numpy(), minlength=data.n_users)
    icount = np.bincount(train["item"].to_numpy(), minlength=data.n_items)
    u, i = ucount[frame["user"].to_numpy()], icount[frame["item"].to_numpy()]
    frame["user_warm"] = u >= threshold
    frame["item_warm"] = i >= threshold
    frame["warm"] = frame["user_warm"].to_numpy() & frame["item_warm"].to_numpy()
    frame["item_unseen"] = i == 0
