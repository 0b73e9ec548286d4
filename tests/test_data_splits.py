"""Split protocols on a hand-made dataset: sizes, hand-counted warm/cold flags, histories, seeds, leakage."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchbed.data.leakage import check_split
from benchbed.data.prepare import load_dataset, prepare_split
from benchbed.data.splits import month_index
from benchbed.errors import ConfigError, DataError
from benchbed.registry import RegistryError
from benchbed.settings import Settings, get_settings, set_settings

# user, item, rating, label, timestamp (hand-made; expected counts below are worked out by hand)
TOY = [
    ("u1", "i1", 5, 1, 10), ("u1", "i2", 2, 0, 20), ("u1", "i3", 4, 1, 30), ("u1", "i4", 5, 1, 40),
    ("u1", "i5", 4, 1, 50),
    ("u2", "i1", 4, 1, 15), ("u2", "i2", 5, 1, 25), ("u2", "i6", 1, 0, 35),
    ("u3", "i1", 5, 1, 12), ("u3", "i3", 3, 0, 22), ("u3", "i2", 4, 1, 45),
    ("u4", "i2", 4, 1, 5), ("u4", "i5", 4, 1, 55),
]  # fmt: skip


@pytest.fixture
def toy(tmp_path: Path) -> str:
    d = tmp_path / "toy"
    d.mkdir()
    lines = ["user_id:token\titem_id:token\trating:float\tlabel:float\ttimestamp:float"]
    lines += ["\t".join(map(str, row)) for row in TOY]
    (d / "toy.inter").write_text("\n".join(lines) + "\n")
    return str(d)


def raw(split, frame: pd.DataFrame, col: str = "item") -> list[str]:  # type: ignore[no-untyped-def]
    table = split.data.items if col == "item" else split.data.users
    return table["raw_id"].iloc[frame[col].to_numpy()].tolist()


def pairs(split, frame: pd.DataFrame) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return list(zip(raw(split, frame, "user"), raw(split, frame), strict=True))


def test_leave_one_out_by_hand(toy: str) -> None:
    prepared = prepare_split(toy, "leave-one-out", {"warm_threshold": 1})
    split = prepared.split
    assert sorted(pairs(split, split.test)) == [("u1", "i5"), ("u2", "i6"), ("u3", "i2")]
    assert sorted(pairs(split, split.valid)) == [("u1", "i4"), ("u2", "i2"), ("u3", "i3")]
    assert len(split.train) == 5
    assert prepared.stats["protocol_stats"] == {"users_dropped": 1, "interactions_dropped": 2}  # u4 has 2
    # train counts: users u1=3 u2=1 u3=1; items i1=3 i2=1 i3=1. threshold 1: only u3-i2 is warm
    test = split.test.assign(pair=pairs(split, split.test)).set_index("pair")
    assert test["warm"].to_dict() == {("u1", "i5"): False, ("u2", "i6"): False, ("u3", "i2"): True}
    assert int(test["item_unseen"].sum()) == 2
    # histories: earlier positives only (u1's i2 has label 0; u3's i3 too)
    hist = {p: raw(split, pd.DataFrame({"item": h})) for p, h in test["history"].items()}
    assert hist == {("u1", "i5"): ["i1", "i3", "i4"], ("u2", "i6"): ["i1", "i2"], ("u3", "i2"): ["i1"]}


def test_warm_threshold_and_history_len_are_parameters(toy: str) -> None:
    split = prepare_split(toy, "leave-one-out", {"warm_threshold": 3, "history_len": 2}).split
    test = split.test.assign(pair=pairs(split, split.test)).set_index("pair")
    assert not test["warm"].any()  # u2, u3 have 1 train row; i5 never in train
    assert test["user_warm"].to_dict() == {("u1", "i5"): True, ("u2", "i6"): False, ("u3", "i2"): False}
    assert raw(split, pd.DataFrame({"item": test.loc[[("u1", "i5")], "history"].iloc[0]})) == ["i3", "i4"]


def test_temporal_quantiles_by_hand(toy: str) -> None:
    # 13 timestamps sorted: 5 10 12 15 20 22 25 30 35 40 45 50 55; q0.8 -> index 10 (t=45), q0.9 -> 11 (t=50)
    prepared = prepare_split(toy)  # a directory of atomic files defaults to leave-one-out
    assert prepared.split.protocol == "leave-one-out"
    split = prepare_split(toy, "temporal-window").split
    assert (len(split.train), len(split.valid), len(split.test)) == (10, 1, 2)
    assert sorted(pairs(split, split.test)) == [("u1", "i5"), ("u4", "i5")]
    assert split.test["item_unseen"].all() and not split.test["warm"].any()
    assert split.train["timestamp"].max() < split.valid["timestamp"].min()
    u4 = split.test[raw(split, split.test, "user") == np.array("u4")].iloc[0]
    assert raw(split, pd.DataFrame({"item": u4["history"]})) == ["i2"]
    # valid row u3-i2 (t=45): u3 has 2 train rows, i2 has 3 -> warm only with threshold 2
    assert not split.valid["warm"].iloc[0]
    assert prepare_split(toy, "temporal-window", {"warm_threshold": 2}).split.valid["warm"].iloc[0]
    half = prepare_split(toy, "temporal-window", {"valid_quantile": 0.5}).split
    assert (len(half.train), len(half.valid), len(half.test)) == (6, 5, 2)


def test_random_per_user_sizes_seed_and_disjointness(tmp_path: Path) -> None:
    d = tmp_path / "grid"
    d.mkdir()
    rows = [f"u{u}\ti{(u + k) % 40}\t{k + 100 * u}" for u in range(30) for k in range(20)]
    (d / "grid.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "\n".join(rows) + "\n")
    a = prepare_split(str(d), "random-per-user", {"seed": 1}).split
    # 20 per user: round(0.1 * 20) = 2 valid and 2 test each
    assert (len(a.train), len(a.valid), len(a.test)) == (480, 60, 60)
    assert (a.test.groupby("user").size() == 2).all() and (a.valid.groupby("user").size() == 2).all()
    again = prepare_split(str(d), "random-per-user", {"seed": 1}, force=True).split
    assert again.hash == a.hash and again.test.equals(a.test)
    other = prepare_split(str(d), "random-per-user", {"seed": 2}).split
    assert not other.test[["user", "item"]].equals(a.test[["user", "item"]])
    assert other.hash != a.hash
    key = {name: set(zip(f["user"], f["item"], strict=True)) for name, f in a.frames().items()}
    assert (
        not (key["train"] & key["test"])
        and not (key["train"] & key["valid"])
        and not (key["valid"] & key["test"])
    )
    assert not a.labeled and all(len(h) <= 10 for h in a.test["history"])  # implicit: all earlier items


def test_unknown_names_and_parameters(toy: str) -> None:
    with pytest.raises(RegistryError, match="did you mean 'leave-one-out'"):
        prepare_split(toy, "leave-one-ot")
    with pytest.raises(RegistryError, match="unknown dataset 'ml-100'.*did you mean"):
        prepare_split("ml-100")
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['sed'\]"):
        prepare_split(toy, "random-per-user", {"sed": 3})
    with pytest.raises(ConfigError, match=r"warm_threshold='many' is invalid; expected an integer >= 0"):
        prepare_split(toy, "leave-one-out", {"warm_threshold": "many"})
    with pytest.raises(DataError, match="protocol 'presplit' does not apply"):
        prepare_split(toy, "presplit")


def test_leakage_check_raises_on_future_history_and_early_test(toy: str) -> None:
    split = prepare_split(toy, "temporal-window").split
    frames = {k: v.copy() for k, v in split.frames().items()}
    check_split(split.data, frames, where="toy", temporal=True, history_len=10)  # the real split passes
    row = frames["train"].index[0]
    frames["train"].at[row, "history"] = [int(frames["test"]["item"].iloc[0])]  # a future item
    with pytest.raises(DataError, match="not an earlier positive"):
        check_split(split.data, frames, where="toy", temporal=True)
    frames = {k: v.copy() for k, v in split.frames().items()}
    frames["test"].loc[0, "timestamp"] = 1
    with pytest.raises(DataError, match="a test row .* precedes the train cut-off"):
        check_split(split.data, frames, where="toy", temporal=True)
    frames = {k: v.copy() for k, v in split.frames().items()}
    frames["test"] = pd.concat([frames["test"], frames["train"].iloc[:1]], ignore_index=True)
    with pytest.raises(DataError, match="test interaction\\(s\\) also in train"):
        check_split(split.data, frames, where="toy", temporal=False)
    frames["valid"] = frames["valid"].iloc[:0]
    with pytest.raises(DataError, match="the valid set is empty"):
        check_split(split.data, frames, where="toy", temporal=False)


# --- CoLLM month windows on tiny real-format files ---


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    base = get_settings()
    set_settings(
        Settings(data_dir=tmp_path / "raw", cache_dir=tmp_path / "cache", results_dir=base.results_dir)
    )
    return tmp_path / "raw"


def ts(month: str, day: int = 15) -> int:
    return int(pd.Timestamp(f"{month}-{day:02d}", tz="UTC").timestamp())


def test_month_index_matches_collm() -> None:
    # CoLLM: (year-2000)*12 + month, shifted so April 2000 = 0
    assert month_index(
        np.array([ts("2000-04"), ts("2001-06"), ts("2002-03"), ts("2003-01")]), "2000-04"
    ).tolist() == [
        0,
        14,
        23,
        33,
    ]


def test_ml1m_collm_month_windows(data_dir: Path) -> None:
    d = data_dir / "ml-1m"
    d.mkdir(parents=True)
    ratings = [
        (1, 10, 5, ts("2001-05")),  # month 13: dropped, and never history
        (1, 20, 5, ts("2001-06")),  # 14 train
        (1, 30, 4, ts("2002-01")),  # 21 train
        (1, 40, 2, ts("2002-04")),  # 24 valid
        (1, 50, 5, ts("2002-09")),  # 29 test
        (1, 60, 5, ts("2003-02")),  # 34 dropped
        (2, 20, 3, ts("2001-07")),  # 15 train
        (2, 40, 4, ts("2002-05")),  # 25 valid
        (2, 50, 4, ts("2002-10")),  # 30 test
        (3, 60, 5, ts("2003-01", 31)),  # 33 test
    ]
    (d / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ratings))
    (d / "movies.dat").write_bytes(
        "".join(f"{i}::Movie {i} (1999)::Drama\n" for i in range(10, 70, 10)).encode("latin-1")
    )
    prepared = prepare_split("ml-1m")
    split = prepared.split
    assert split.protocol == "temporal-window" and split.params["train_months"] == [14, 23]
    assert (len(split.train), len(split.valid), len(split.test)) == (3, 2, 3)
    assert prepared.stats["protocol_stats"]["outside_windows"] == 2
    assert split.test["label"].tolist() == [1, 1, 1] and split.valid["label"].tolist() == [0, 1]
    u1 = split.test[split.test["user"] == 0].iloc[0]
    assert raw(split, pd.DataFrame({"item": u1["history"]})) == ["20", "30"]  # not 10 (month 13)
    assert split.data.domain == "movies" and split.data.n_users == 3


def test_empty_window_is_an_error(data_dir: Path) -> None:
    d = data_dir / "ml-1m"
    d.mkdir(parents=True)
    (d / "ratings.dat").write_text(f"1::10::5::{ts('2001-06')}\n1::20::5::{ts('2002-05')}\n")
    (d / "movies.dat").write_text("10::A (1990)::Drama\n20::B (1991)::Drama\n")
    with pytest.raises(DataError, match="the test set is empty"):
        prepare_split("ml-1m")
    cache = get_settings().cache_dir
    assert not [
        p for p in cache.rglob("*") if p.is_file()
    ]  # neither the data nor the split entry, no temp files


def test_amazon_book_collm_recipe_and_december_halves(data_dir: Path) -> None:
    d = data_dir / "amazon-book"
    d.mkdir(parents=True)
    day = 86400
    start = ts("2017-01", 1)
    lines = []
    for u in range(22):  # a dense 22 x 23 block in 2017 -> every user/item > 20 after the no-title item goes
        for i in range(23):
            t = start + ((u * 23 + i) * 7919 % 365) * day + u
            lines.append(
                {
                    "reviewerID": f"U{u}",
                    "asin": f"B{i}",
                    "overall": 5.0 if (u + i) % 3 else 4.0,
                    "unixReviewTime": t,
                }
            )
    lines += [{"reviewerID": "U0", "asin": "B0", "overall": 1.0, "unixReviewTime": ts("2016-06")}]  # not 2017
    lines += [
        {"reviewerID": "SPARSE", "asin": f"B{i}", "overall": 5.0, "unixReviewTime": start + i}
        for i in range(5)
    ]
    with gzip.open(d / "Books_5.json.gz", "wt") as fh:
        fh.writelines(json.dumps(x) + "\n" for x in lines)
    meta = [{"asin": f"B{i}", "title": f"Book {i}"} for i in range(22)] + [{"asin": "B22", "title": ""}]
    (d / "meta_Books.json").write_text("".join(json.dumps(m) + "\n" for m in meta))
    data = load_dataset("amazon-book")
    assert (data.n_users, data.n_items, len(data.interactions)) == (22, 22, 22 * 22)
    assert data.stats["outside_time_range"] == 1 and data.stats["meta_without_title"] == 1
    assert data.stats["interactions_without_item_title"] == 22 and data.stats["removed_by_count_filter"] == 5
    assert data.domain == "books" and set(data.interactions["label"]) == {0, 1}
    split = prepare_split("amazon-book").split
    months = month_index(data.interactions["timestamp"].to_numpy(), "2017-01")
    december = int((months == 11).sum())
    assert len(split.train) == int((months < 11).sum())
    assert (len(split.valid), len(split.test)) == (december // 2, december - december // 2)
    assert split.valid["timestamp"].max() <= split.test["timestamp"].min()
