"""Item indexing for generative retrieval: which string each item is spelled as (OpenP5).

``random``: items shuffled with a seed and numbered from 1001 (OpenP5-R, the default; ids carry no signal).
``sequential``: numbered from 1001 in order of first appearance when users' training sequences are read one
after another (OpenP5-S; consecutive items of a user get close numbers, so ids share token prefixes).

The index is a split artifact, cached on disk keyed by the split hash (and in memory for the process); the
generative task hands it to every method (``GenerativeProtocol``), so all spell items identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchbed.data.cache import memo_or_json
from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError
from benchbed.settings import get_settings

MODES = ("random", "sequential")
FIRST_ID = 1001  # OpenP5 numbers items from 1001 in both modes
# (split hash, mode, seed) -> index: one object per split and process, content-keyed like the disk cache
_MEMO: dict[tuple[str, str, int], ItemIndex] = {}


@dataclass(frozen=True)
class ItemIndex:
    """``strings[i]`` is the id text of dense item ``i`` ("" for items the index does not cover)."""

    mode: str
    seed: int
    strings: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.strings)

    def text(self, item: int) -> str:
        return self.strings[item]

    def covered(self) -> np.ndarray:
        return np.flatnonzero(
            np.fromiter((bool(s) for s in self.strings), dtype=bool, count=len(self.strings))
        )

    def require(self, items: np.ndarray, what: str) -> None:
        """One-line error when any of ``items`` has no id string."""
        items = np.unique(np.asarray(items, dtype=np.int64))
        outside = items[(items < 0) | (items >= len(self.strings))]
        missing = [int(i) for i in items if 0 <= i < len(self.strings) and not self.strings[i]]
        bad = [*map(int, outside), *missing]
        if bad:
            raise DataError(
                f"item index ({self.mode}) does not cover {len(bad)} {what} item(s), e.g. item {bad[0]}; "
                "rebuild it for this split (delete the cached index or change task.indexing)"
            )

    def to_json(self) -> dict[str, object]:
        return {"mode": self.mode, "seed": self.seed, "strings": list(self.strings)}

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> ItemIndex:
        strings = raw.get("strings")
        if not isinstance(strings, list):
            raise DataError("item index file: field 'strings' must be a list")
        return cls(mode=str(raw["mode"]), seed=int(raw["seed"]), strings=tuple(map(str, strings)))  # type: ignore[call-overload]


def _order_random(split: Split, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(split.n_items)


def _order_sequential(split: Split) -> np.ndarray:
    seen: dict[int, None] = {}
    for _, seq in sorted(split.train_sequences().items()):
        for item in seq:
            seen.setdefault(int(item), None)
    for frame in (split.valid, split.test):  # items first met in valid/test still need an id
        for item in frame.sort_values(["user", "timestamp"], kind="stable")["item"]:
            seen.setdefault(int(item), None)
    rest = [i for i in range(split.n_items) if i not in seen]
    return np.asarray([*seen, *rest], dtype=np.int64)


def build_index(split: Split, mode: str = "random", seed: int = 0) -> ItemIndex:
    """Number every item of the dataset from 1001 in the order ``mode`` gives."""
    if mode not in MODES:
        raise ConfigError(f"task.indexing: expected one of {list(MODES)}, got {mode!r}")
    order = _order_random(split, seed) if mode == "random" else _order_sequential(split)
    strings = [""] * split.n_items
    for rank, item in enumerate(order):
        strings[int(item)] = str(FIRST_ID + rank)
    return ItemIndex(mode=mode, seed=seed if mode == "random" else 0, strings=tuple(strings))


def index_path(split: Split, mode: str, seed: int) -> Path:
    split_hash = split.key
    return get_settings().cache_dir / "generative" / split_hash / f"index-{mode}-{seed}.json"


def get_index(split: Split, mode: str = "random", seed: int = 0) -> ItemIndex:
    """The split's index for ``mode``: from this process's memo, else the disk cache, else built, cached."""
    key = (split.key, mode, seed if mode == "random" else 0)
    path = index_path(split, mode, seed)

    def build() -> ItemIndex:
        return build_index(split, mode, seed)

    return memo_or_json(_MEMO, key, path, "item index", ItemIndex.from_json, build, ItemIndex.to_json)
