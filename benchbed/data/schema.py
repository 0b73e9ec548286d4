"""The two data contracts every method and task stands on: ``InteractionData`` and ``Split``.

Ids are dense integers ``0..n-1``; the raw ids live in the ``raw_id`` column of the user and item tables so
records and predictions can always be mapped back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from benchbed.errors import DataError

# Columns of ``InteractionData.interactions`` (and of the split frames). ``rating`` is NaN where the source
# has none; ``label`` is -1 where the data is implicit (no CTR label).
INTERACTION_COLUMNS = ("user", "item", "rating", "label", "timestamp")
# Extra columns a split adds to its frames.
HISTORY_COLUMN = "history"  # list[int]: the CTR history (earlier positives, last N) of the row's user
FLAG_COLUMNS = ("user_warm", "item_warm", "warm", "item_unseen")  # on valid and test rows


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values and column names), stable across processes."""
    h = hashlib.sha256()
    h.update(",".join(map(str, frame.columns)).encode())
    for col in frame.columns:
        values = frame[col]
        if values.dtype == object:
            h.update("\x1f".join(map(str, values.tolist())).encode())
        else:
            h.update(np.ascontiguousarray(values.to_numpy()).tobytes())
    return h.hexdigest()


@dataclass
class InteractionData:
    """Users, items (with text) and interactions of one dataset after its recipe's preprocessing.

    ``interactions``: columns ``INTERACTION_COLUMNS`` (user/item int64, rating float64, label int8, timestamp
    int64 seconds), sorted by (timestamp, user, item).
    ``items``: indexed by item id; ``raw_id`` and ``title`` columns plus any text fields of the source.
    ``users``: indexed by user id; ``raw_id`` plus any user features.
    ``stats``: counts the loader wants reported (e.g. meta lines skipped for a missing title).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    stats: dict[str, Any] = field(default_factory=dict)
    domain: str = "items"  # the noun prompts use: "movies", "books", "items"

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def labeled(self) -> bool:
        """True when interactions carry a 0/1 CTR label."""
        return bool(len(self.interactions)) and bool((self.interactions["label"] >= 0).all())

    def validate(self) -> InteractionData:
        """Raise a one-line ``DataError`` on missing columns, out-of-range or duplicate ids."""
        missing = [c for c in INTERACTION_COLUMNS if c not in self.interactions.columns]
        if missing:
            raise DataError(f"dataset {self.name!r}: interactions lack column(s) {missing}")
        if len(self.interactions) == 0:
            raise DataError(f"dataset {self.name!r}: no interactions left after preprocessing")
        for table, label in ((self.items, "item"), (self.users, "user")):
            if "raw_id" not in table.columns:
                raise DataError(f"dataset {self.name!r}: {label} table lacks column 'raw_id'")
            if not np.array_equal(table.index.to_numpy(), np.arange(len(table))):
                raise DataError(f"dataset {self.name!r}: {label} ids must be 0..n-1 in order")
            dup = table["raw_id"].duplicated()
            if dup.any():
                raw = table["raw_id"][dup].iloc[0]
                raise DataError(f"dataset {self.name!r}: duplicate {label} raw id {raw!r}")
        for col, n in (("user", self.n_users), ("item", self.n_items)):
            ids = self.interactions[col].to_numpy()
            if ids.min() < 0 or ids.max() >= n:
                raise DataError(f"dataset {self.name!r}: interaction {col} id outside 0..{n - 1}")
        if "title" not in self.items.columns:
            raise DataError(f"dataset {self.name!r}: item table lacks column 'title'")
        return self

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for frame in (self.interactions, self.items, self.users):
            h.update(frame_hash(frame.reset_index(drop=True)).encode())
        return h.hexdigest()[:16]

    def item_titles(self) -> list[str]:
        return self.items["title"].fillna("").astype(str).tolist()


@dataclass
class Split:
    """Train / valid / test frames of one protocol, with warm/cold flags and a content hash.

    Frames have the ``INTERACTION_COLUMNS``; labeled (CTR) splits add ``history`` (list of item ids, the
    user's earlier positives, last N) to every row. Valid and test frames add the ``FLAG_COLUMNS``.
    Protocol artifacts every method must share (item index, template banks) are not kept here: the task
    hands them to methods explicitly (``benchbed.api.TaskSetup``).
    """

    data: InteractionData
    protocol: str
    params: dict[str, Any]
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    hash: str = ""

    @property
    def labeled(self) -> bool:
        return self.data.labeled

    @property
    def n_users(self) -> int:
        return self.data.n_users

    @property
    def n_items(self) -> int:
        return self.data.n_items

    def frames(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    @property
    def key(self) -> str:
        """The split's content hash: ``hash`` when the split was prepared (stored), computed otherwise. What
        every cache and stage identity names the split by."""
        return self.hash or self.compute_hash()

    def compute_hash(self) -> str:
        h = hashlib.sha256(self.data.content_hash().encode())
        h.update(repr(sorted(self.params.items())).encode())
        h.update(self.protocol.encode())
        for name, frame in self.frames().items():
            h.update(name.encode())
            h.update(frame_hash(frame.reset_index(drop=True)).encode())
        return h.hexdigest()[:16]

    def train_sequences(self) -> dict[int, np.ndarray]:
        """Each user's training items in time order (ties broken by row order)."""
        ordered = self.train.sort_values(["timestamp"], kind="stable")
        return {int(u): g["item"].to_numpy() for u, g in ordered.groupby("user", sort=True)}

    def train_positive_mask_items(self) -> dict[int, np.ndarray]:
        """Items each user interacted with in train (any label): masked in full ranking."""
        return {int(u): g["item"].unique() for u, g in self.train.groupby("user", sort=True)}
