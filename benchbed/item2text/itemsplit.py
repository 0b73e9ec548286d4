"""Split by item (ELM's "unseen embedding" regime): test and valid items never appear in a training example.

Items with a title are shuffled with ``item_seed``; the first ``test_items`` share is test, the next
``valid_items`` share valid, the rest train. The split is an artifact of the interaction split: cached as
JSON under ``<cache>/item2text/<split hash>/items-<params hash>.json`` (and per process), with its own
content hash for records; methods get it from the task (``Item2TextProtocol.items``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchbed.config import stable_hash
from benchbed.data.cache import memo_or_json
from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError
from benchbed.item2text.facts import ItemFacts
from benchbed.settings import get_settings

_MEMO: dict[tuple[str, str], ItemSplit] = {}


@dataclass(frozen=True)
class ItemSplit:
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    seed: int
    params: dict[str, Any]

    @property
    def hash(self) -> str:
        return stable_hash(
            {"train": self.train.tolist(), "valid": self.valid.tolist(), "test": self.test.tolist()}
        )[:16]

    def role(self, n_items: int) -> np.ndarray:
        """Per item: "train" / "valid" / "test" / "" (not eligible)."""
        out = np.full(n_items, "", dtype=object)
        for name in ("train", "valid", "test"):
            out[getattr(self, name)] = name
        return out

    def info(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "seed": self.seed,
            **self.params,
            "counts": {k: len(getattr(self, k)) for k in ("train", "valid", "test")},
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "params": self.params,
            **{k: getattr(self, k).tolist() for k in ("train", "valid", "test")},
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ItemSplit:
        arrays = {k: np.asarray(raw[k], dtype=np.int64) for k in ("train", "valid", "test")}
        return cls(seed=int(raw["seed"]), params=dict(raw["params"]), **arrays)


def build_item_split(facts: ItemFacts, *, test_items: float, valid_items: float, seed: int) -> ItemSplit:
    for name, v in (("test_items", test_items), ("valid_items", valid_items)):
        if not 0 <= float(v) < 1:
            raise ConfigError(f"task item2text: {name}={v!r}; expected a share in [0, 1)")
    if test_items + valid_items >= 1:
        raise ConfigError("task item2text: test_items + valid_items must leave items for training (< 1)")
    eligible = np.asarray([i for i in range(len(facts)) if facts.has(i, "title")], dtype=np.int64)
    if len(eligible) < 2:
        raise DataError(
            f"dataset {facts.dataset!r}: {len(eligible)} item(s) with a title; item2text needs >= 2 "
            "(field 'title')"
        )
    order = np.random.default_rng(seed).permutation(eligible)
    n_test = max(1, int(round(test_items * len(order)))) if test_items > 0 else 0
    n_valid = int(round(valid_items * len(order)))
    test, valid, train = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]
    params = {"test_items": float(test_items), "valid_items": float(valid_items)}
    return ItemSplit(train=np.sort(train), valid=np.sort(valid), test=np.sort(test), seed=seed, params=params)


def _path(split: Split, key: str) -> Path:
    split_hash = split.key
    return get_settings().cache_dir / "item2text" / split_hash / f"items-{key}.json"


def get_item_split(
    split: Split, facts: ItemFacts, *, test_items: float, valid_items: float, seed: int
) -> ItemSplit:
    """The item split from this process's memo, else the disk cache, else built and cached."""
    key = stable_hash({"test": test_items, "valid": valid_items, "seed": seed})[:12]
    memo = (split.key, key)

    def build() -> ItemSplit:
        return build_item_split(facts, test_items=test_items, valid_items=valid_items, seed=seed)

    return memo_or_json(
        _MEMO, memo, _path(split, key), "item split", ItemSplit.from_json, build, ItemSplit.to_json
    )
