"""The leakage check every split passes before it is cached or used.

It raises (one line) on: a valid/test interaction also in train; a history holding an item that is not an
earlier positive of the row's user (a future item); a valid/test row before the train cut-off in temporal
protocols; an empty part.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchbed.data.enrich import positive_mask
from benchbed.data.schema import HISTORY_COLUMN, InteractionData
from benchbed.errors import DataError


def _pair_keys(frame: pd.DataFrame, n_items: int) -> np.ndarray:
    return frame["user"].to_numpy(np.int64) * n_items + frame["item"].to_numpy(np.int64)


def check_split(
    data: InteractionData,
    frames: dict[str, pd.DataFrame],
    *,
    where: str,
    temporal: bool,
    history_len: int | None = None,
) -> None:
    """Raise ``DataError`` naming ``where`` (dataset and protocol) on the first problem found."""
    for name, frame in frames.items():
        if len(frame) == 0:
            raise DataError(f"{where}: the {name} set is empty; expected at least one interaction")
    train_keys = _pair_keys(frames["train"], data.n_items)
    for name in ("valid", "test"):
        keys = _pair_keys(frames[name], data.n_items)
        dup = np.isin(keys, train_keys)
        if dup.any():
            row = frames[name].iloc[int(np.flatnonzero(dup)[0])]
            user, item = (
                data.users["raw_id"].iloc[int(row["user"])],
                data.items["raw_id"].iloc[int(row["item"])],
            )
            raise DataError(
                f"{where}: {int(dup.sum())} {name} interaction(s) also in train, e.g. user {user!r} "
                f"item {item!r}"
            )
    if temporal:
        cutoff = int(frames["train"]["timestamp"].max())
        for name in ("valid", "test"):
            early = int(frames[name]["timestamp"].min())
            if early < cutoff:
                raise DataError(f"{where}: a {name} row (t={early}) precedes the train cut-off (t={cutoff})")
    if all(HISTORY_COLUMN in f for f in frames.values()):
        _check_histories(data, frames, where, history_len)


def _check_histories(
    data: InteractionData, frames: dict[str, pd.DataFrame], where: str, history_len: int | None
) -> None:
    """Every history item must be a positive of the same user with an earlier timestamp than the row."""
    union = pd.concat(list(frames.values()), ignore_index=True)
    pos = union[positive_mask(union)]
    first_pos = (
        pd.Series(pos["timestamp"].to_numpy(), index=_pair_keys(pos, data.n_items)).groupby(level=0).min()
    )
    lengths = union[HISTORY_COLUMN].map(len).to_numpy()
    if history_len is not None and len(lengths) and lengths.max() > history_len:
        raise DataError(f"{where}: a history is longer than history_len={history_len}")
    if lengths.sum() == 0:
        return
    flat = np.fromiter(
        (i for h in union[HISTORY_COLUMN] for i in h), dtype=np.int64, count=int(lengths.sum())
    )
    row_user = np.repeat(union["user"].to_numpy(np.int64), lengths)
    row_ts = np.repeat(union["timestamp"].to_numpy(np.int64), lengths)
    item_ts = first_pos.reindex(row_user * data.n_items + flat).to_numpy()
    bad = ~(item_ts < row_ts)  # NaN (not a positive of this user) compares False -> bad
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: history of user {data.users['raw_id'].iloc[int(row_user[k])]!r} holds item "
            f"{data.items['raw_id'].iloc[int(flat[k])]!r}, which is not an earlier positive of that user"
        )
