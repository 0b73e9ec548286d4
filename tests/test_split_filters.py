"""Split filters (``rating_above``, ``kcore``; CLLM4Rec §4.1.1) on a planted dataset worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchbed.data.prepare import prepare_split
from benchbed.errors import ConfigError, DataError
from benchbed.params import ParamError

# user, item, rating, timestamp. rating > 3 removes u1-i4, u3-i4, u4-i1 (3 rows). The 2-core then removes
# u4-i4 (u4 has one kept row), u5-i5 (i5 has one), and only on a second pass u5-i3 (u5 is left with one):
# a single pass would keep u5-i3. Kept: u1, u2, u3 x i1, i2, i3 (9 rows, 3 per user).
PLANTED = [
    ("u1", "i1", 5, 1), ("u1", "i2", 4, 2), ("u1", "i3", 5, 3), ("u1", "i4", 2, 4),
    ("u2", "i1", 4, 5), ("u2", "i2", 5, 6), ("u2", "i3", 4, 7),
    ("u3", "i1", 5, 8), ("u3", "i2", 4, 9), ("u3", "i3", 4, 10), ("u3", "i4", 1, 11),
    ("u4", "i4", 5, 12), ("u4", "i1", 2, 13),
    ("u5", "i5", 5, 14), ("u5", "i3", 4, 15),
]  # fmt: skip
FILTER = {"rating_above": 3, "kcore": 2}


def _atomic(directory: Path, name: str, rows: list[tuple[str, str, int, int]]) -> str:
    directory.mkdir()
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += ["\t".join(map(str, row)) for row in rows]
    (directory / f"{name}.inter").write_text("\n".join(lines) + "\n")
    return str(directory)


@pytest.fixture
def planted(tmp_path: Path) -> str:
    return _atomic(tmp_path / "planted", "planted", PLANTED)


def _pairs(split, part: str) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    frame = getattr(split, part)
    users = split.data.users["raw_id"].iloc[frame["user"].to_numpy()]
    items = split.data.items["raw_id"].iloc[frame["item"].to_numpy()]
    return set(zip(users, items, strict=True))


def test_ratings_then_iterative_kcore_then_the_split(planted: str) -> None:
    prepared = prepare_split(planted, "random-per-user", FILTER)
    split = prepared.split
    kept = {(u, i) for u in ("u1", "u2", "u3") for i in ("i1", "i2", "i3")}
    parts = {part: _pairs(split, part) for part in ("train", "valid", "test")}
    assert set().union(*parts.values()) == kept
    assert sum(len(p) for p in parts.values()) == 9  # no row in two parts
    assert all(len(p) == 3 for p in parts.values())  # 3 rows per user: one train, one valid, one test
    # the filtered dataset is re-indexed: only the kept users and items are ids (and candidates)
    assert (split.data.n_users, split.data.n_items) == (3, 3)
    assert split.data.items["raw_id"].tolist() == ["i1", "i2", "i3"]
    assert prepared.stats["source"]["split_filter"] == {
        "params": "rating_above=3, kcore=2",
        "interactions_before_filter": 15,
        "removed_by_rating": 3,
        "removed_by_kcore": 3,
        "interactions_after_filter": 9,
        "users_before_filter": 5,
        "items_before_filter": 5,
    }
    assert split.params["rating_above"] == 3 and split.params["kcore"] == 2
    again = prepare_split(planted, "random-per-user", FILTER)  # the cache hit re-applies the same filter
    assert again.cache_hit and again.split.hash == split.hash
    assert {part: _pairs(again.split, part) for part in parts} == parts


def test_a_filtered_split_shares_no_identity_with_the_unfiltered_one(planted: str) -> None:
    plain = prepare_split(planted, "random-per-user")
    neutral = prepare_split(planted, "random-per-user", {"rating_above": None, "kcore": 0})
    filtered = prepare_split(planted, "random-per-user", FILTER)
    # neutral values are left out: the unfiltered split keeps its parameters, cache entry and hash
    assert "rating_above" not in plain.split.params and "kcore" not in plain.split.params
    assert neutral.cache_hit and neutral.split.hash == plain.split.hash
    assert filtered.split.hash != plain.split.hash
    assert filtered.stats["split_key"] != plain.stats["split_key"]
    assert filtered.stats["data_hash"] != plain.stats["data_hash"]
    # unfiltered: every row of u1-u3 (11); u4 and u5 have 2 rows, under random-per-user's minimum of 3
    assert len(plain.split.train) + len(plain.split.valid) + len(plain.split.test) == 11
    rating_only = prepare_split(planted, "random-per-user", {"rating_above": 3})
    assert rating_only.stats["source"]["split_filter"]["interactions_after_filter"] == 12
    assert rating_only.split.hash not in (plain.split.hash, filtered.split.hash)


def test_filter_values_are_checked_and_a_presplit_directory_refuses_them(
    planted: str, tmp_path: Path
) -> None:
    with pytest.raises(ParamError, match="kcore=-1"):
        prepare_split(planted, "random-per-user", {"kcore": -1})
    with pytest.raises(ParamError, match="rating_above='3'"):
        prepare_split(planted, "random-per-user", {"rating_above": "3"})
    with pytest.raises(DataError, match="keep no interaction"):
        prepare_split(planted, "random-per-user", {"rating_above": 5})
    presplit = tmp_path / "pre"
    presplit.mkdir()
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    for part, rows in {"train": PLANTED[:9], "valid": PLANTED[9:12], "test": PLANTED[12:]}.items():
        (presplit / f"pre.{part}.inter").write_text(
            header + "".join("\t".join(map(str, r)) + "\n" for r in rows)
        )
    with pytest.raises(ConfigError, match="apply to drawn splits only"):
        prepare_split(str(presplit), "presplit", FILTER)


def test_the_record_says_the_filter(planted: str, cli) -> None:  # type: ignore[no-untyped-def]
    args = ("run", "--method", "pop", "--task", "topk", "--dataset", planted, "--split", "random-per-user")
    code, _, err = cli(*args, "--split-param", "rating_above=3", "--split-param", "kcore=2")
    assert code == 0, err
    (path,) = Path(cli.results).rglob("pop-*.json")
    record = json.loads(path.read_text())
    assert record["split_params"]["rating_above"] == 3 and record["split_params"]["kcore"] == 2
    assert record["counts"]["all"]["rows"] == 3  # one test row per kept user
