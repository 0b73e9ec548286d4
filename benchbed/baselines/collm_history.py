"""CoLLM's CTR history rule: a row's history is its user's positives that come *before it in the file*.

CoLLM's data files (``collm-datasets/ml-1m.zip``: ``{train,valid,test}_ood2.pkl``) hold one time-ordered table
(rows sorted by user, then timestamp), cut into train/valid/test; each row's ``his`` is ``[0]`` followed by
every earlier positive (``label == 1``) of the same user in that table, over train, valid and test alike
(checked on all 51,623 rows of the released ML-1M files: no exception). Same-second ratings are therefore
ordered by the file, and a positive rated in the same second but earlier in the file counts; benchbed's split
``history`` column (``benchbed.data.enrich``) keeps only strictly earlier timestamps, which on ml-100k gives a
different last-10 history for 35% of the CTR rows. The models read the last N of ``his``
(``rec_datasets.MoiveOOData_sasrec``: ``sas_seq`` = last 25 for SASRec; ``minigpt4rec_v2.encode_recdata_v2``:
``sas_seq[:, -10:]`` for DIN).

"The file" here is the split's own row order: every protocol reads interactions in time order with ties in
the raw file's order (``tie_break: file``), and the frames keep that order; train, valid, test are
concatenated and sorted by (user, timestamp) stably, so ties keep it. Only labels of rows *before* a row
enter its history, never its own (the same information the split's ``history`` column already carries).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from benchbed.data.enrich import positive_mask

STAGES = ("train", "valid", "test")


def file_order_histories(frames: Mapping[str, pd.DataFrame], width: int) -> dict[str, list[list[int]]]:
    """Per frame and row: the last ``width`` positives of the row's user earlier in the split's file order."""
    parts = [frames[s] for s in STAGES if s in frames]
    names = [s for s in STAGES if s in frames]
    union = pd.concat([p[["user", "item", "label", "timestamp"]] for p in parts], ignore_index=True)
    order = np.lexsort((union["timestamp"].to_numpy(), union["user"].to_numpy()))  # stable: ties by file
    users = union["user"].to_numpy(np.int64)[order]
    items = union["item"].to_numpy(np.int64)[order]
    positive = positive_mask(union)[order]
    flat: list[list[int]] = [[] for _ in range(len(union))]
    seen: list[int] = []
    for k in range(len(order)):
        if k == 0 or users[k] != users[k - 1]:
            seen = []
        flat[int(order[k])] = seen[-width:] if width > 0 else []
        if positive[k]:
            seen.append(int(items[k]))
    out: dict[str, list[list[int]]] = {}
    offset = 0
    for name, part in zip(names, parts, strict=True):
        out[name] = flat[offset : offset + len(part)]
        offset += len(part)
    return out


class RowHistories:
    """The file-order history of each (user, item) row of a split, for scoring requests by their pair.

    ``ScoreRequests`` carry the split's own (strictly-earlier) history; a model that follows CoLLM's rule
    looks its row up by (user, item). A pair that is not a row of the split, or that occurs twice (so the
    row is ambiguous), keeps the history the request carries.
    """

    def __init__(self, frames: Mapping[str, pd.DataFrame], width: int) -> None:
        hist = file_order_histories(frames, width)
        keys: dict[tuple[int, int], list[int] | None] = {}
        for name, rows in hist.items():
            frame = frames[name]
            for u, i, h in zip(frame["user"].to_numpy(), frame["item"].to_numpy(), rows, strict=True):
                key = (int(u), int(i))
                keys[key] = None if key in keys else h
        self._by_pair = keys

    def lookup(self, users: np.ndarray, items: np.ndarray, given: list[list[int]]) -> list[list[int]]:
        out = []
        for u, i, h in zip(users, items, given, strict=True):
            found = self._by_pair.get((int(u), int(i)))
            out.append(list(h) if found is None else found)
        return out
