"""ml-100k end to end from RecBole's wheel: known facts, every protocol, the shared session cache."""

from __future__ import annotations

import numpy as np
import pytest

from benchbed.data.prepare import load_dataset, prepare_split


def test_ml100k_known_facts() -> None:
    data = load_dataset("ml-100k")
    assert (len(data.interactions), data.n_users, data.n_items) == (100_000, 943, 1_682)
    assert data.domain == "movies" and data.labeled
    assert data.items.loc[0, "title"] == "Toy Story" and data.items.loc[0, "raw_id"] == "1"
    assert "Animation" in data.items.loc[0, "genres"] and data.items.loc[0, "year"] == "1995"
    assert {"age", "gender", "occupation"} <= set(data.users.columns)
    # TALLRec's rule: label = rating > 3
    inter = data.interactions
    assert np.array_equal(inter["label"].to_numpy() == 1, inter["rating"].to_numpy() > 3)
    assert int(inter["label"].sum()) == int((inter["rating"] > 3).sum()) == 55_375
    assert inter["timestamp"].is_monotonic_increasing


@pytest.mark.parametrize(
    ("protocol", "sizes"),
    [
        ("temporal-window", (79_999, 10_001, 10_000)),
        ("leave-one-out", (98_114, 943, 943)),
        ("random-per-user", (79_926, 10_037, 10_037)),
    ],
)
def test_ml100k_protocols(protocol: str, sizes: tuple[int, int, int]) -> None:
    prepared = prepare_split("ml-100k", protocol)
    split = prepared.split
    assert (len(split.train), len(split.valid), len(split.test)) == sizes
    assert split.hash and split.hash == split.compute_hash()
    assert len(split.train) + len(split.valid) + len(split.test) == 100_000  # nobody dropped on ml-100k
    for frame in (split.valid, split.test):
        assert {"history", "user_warm", "item_warm", "warm", "item_unseen"} <= set(frame.columns)
        assert frame["history"].map(len).max() == 10
    stats = prepared.stats
    assert stats["test_warm"] + stats["test_cold"] == sizes[2]
    assert stats["test_warm"] == int(split.test["warm"].sum())


def test_ml100k_default_is_temporal_quantiles_and_cache_hit_is_identical() -> None:
    first = prepare_split("ml-100k")
    assert first.split.protocol == "temporal-window" and first.split.params["by"] == "quantile"
    again = prepare_split("ml-100k")
    assert again.cache_hit and again.split.hash == first.split.hash
    for name in ("train", "valid", "test"):
        assert again.split.frames()[name].equals(first.split.frames()[name])
    assert again.split.data.content_hash() == first.split.data.content_hash()
    assert isinstance(again.split.test["history"].iloc[0], list)
