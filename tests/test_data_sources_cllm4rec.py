"""CLLM4Rec's data: Amazon 2014 with the paper's recipe (reviews kept), and the authors' released layout.

Amazon: files written in the real 2014 raw format (JSON review lines with ``reviewText``, Python-literal meta
lines), read through the catalog entry ``amazon-beauty-cllm4rec`` end to end. The data is built so that the
order of the steps shows: a user and an item that survive a 5-core on all ratings but not once the ratings
<= 3 are dropped first (the paper's "5-core after binarisation").

Release layout: ``meta.pkl``, ``{train,val,test}_matrix.npz``, ``user_item_texts/review.pkl`` written as the
authors' code reads them (``pickle``, ``scipy.sparse.save_npz``); the split must be theirs, row for row.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from benchbed.data.prepare import prepare_split
from benchbed.errors import DataError
from benchbed.methods.cllm4rec.docs import review_column
from benchbed.settings import Settings, set_settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir of this test's own (other tests write their own Beauty files)."""
    monkeypatch.setenv("BENCHBED_DATA", str(tmp_path / "data"))
    set_settings(Settings.from_env())
    return tmp_path / "data"


def review(user: str, item: str, rating: float, t: int, text: str | None) -> str:
    obj = {
        "reviewerID": user,
        "asin": item,
        "reviewerName": "x",
        "helpful": [0, 0],
        "overall": rating,
        "summary": "s",
        "unixReviewTime": t,
        "reviewTime": "01 1, 2014",
    }
    if text is not None:
        obj["reviewText"] = text
    return json.dumps(obj)


def test_amazon2014_cllm4rec_recipe_binarises_then_5core_and_keeps_reviews(data_dir: Path) -> None:
    d = data_dir / "amazon-beauty"  # the raw files of the OpenP5 entry: one download, two recipes
    d.mkdir(parents=True)
    lines = [
        review(f"a{u}", f"b{i}", 5.0, 1000 + 10 * u + i, f"user a{u} loves  lipstick\nb{i}")
        for u in range(7)
        for i in range(6)
    ]
    # x: six ratings of 3 (survives a 5-core on all ratings, not after binarisation)
    lines += [review("x", f"b{i}", 3.0, 2000 + i, "meh") for i in range(6)]
    # item y: rated 2 by six users (same)
    lines += [review(f"a{u}", "y", 2.0, 3000 + u, "bad") for u in range(6)]
    lines.append(review("a0", "b9", 4.0, 4000, None))  # no reviewText: "" (and b9 goes in the 5-core)
    (d / "reviews_Beauty_5.json").write_text("\n".join(lines) + "\n")
    meta = [repr({"asin": f"b{i}", "title": f"Lipstick {i}", "categories": [["Beauty"]]}) for i in range(6)]
    (d / "meta_Beauty.json").write_text("\n".join(meta) + "\n")

    split = prepare_split("amazon-beauty-cllm4rec", download=False).split
    data = split.data
    assert (data.n_users, data.n_items, len(data.interactions)) == (7, 6, 42)
    assert data.stats["negatives_removed"] == 12 and data.stats["removed_by_count_filter"] == 1
    assert (data.interactions["label"] == 1).all()
    assert split.protocol == "random-per-user"
    for part, n in (("train", 4), ("valid", 1), ("test", 1)):  # 6 items: 80/10/10 rounded, >= 1 each
        assert (getattr(split, part).groupby("user").size() == n).all(), part
    assert review_column(split.train) == "review"
    raw_user = data.users["raw_id"].to_numpy()
    raw_item = data.items["raw_id"].to_numpy()
    for row in split.train.itertuples():
        assert row.review == f"user {raw_user[row.user]} loves lipstick {raw_item[row.item]}"


def write_release(d: Path, *, users: int = 4, items: int = 5, shape: tuple[int, int] | None = None) -> dict:
    rng = np.random.default_rng(0)
    parts = {"train": [], "val": [], "test": []}
    for u in range(users):
        order = rng.permutation(items)
        parts["test"].append((u, int(order[0])))
        parts["val"].append((u, int(order[1])))
        parts["train"] += [(u, int(i)) for i in order[2:]]
    (d / "user_item_texts").mkdir(parents=True)
    with open(d / "meta.pkl", "wb") as f:
        pickle.dump({"num_users": users, "num_items": items}, f)
    for name, pairs in parts.items():
        r, c = np.array(pairs).T
        mat = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=shape or (users, items))
        sp.save_npz(d / f"{name}_matrix.npz", mat)
    reviews = [
        (f"user_{u} writes the following review for item_{i}:", f"review {u} {i}") for u, i in parts["train"]
    ]
    reviews.append((f"user_0 writes the following review for item_{parts['test'][0][1]}:", "a test pair"))
    with open(d / "user_item_texts" / "review.pkl", "wb") as f:
        pickle.dump(reviews, f)
    return parts


def test_release_layout_is_read_as_the_authors_exact_split(tmp_path: Path) -> None:
    d = tmp_path / "AM_Beauty"
    parts = write_release(d)
    split = prepare_split(str(d)).split
    assert split.protocol == "presplit" and split.data.name == "AM_Beauty"
    for ours, theirs in (("train", "train"), ("valid", "val"), ("test", "test")):
        frame = getattr(split, ours)
        raw_u = split.data.users["raw_id"].to_numpy()[frame["user"]].astype(int)
        raw_i = split.data.items["raw_id"].to_numpy()[frame["item"]].astype(int)
        assert sorted(zip(raw_u.tolist(), raw_i.tolist(), strict=True)) == sorted(parts[theirs])
        np.testing.assert_array_equal(raw_u, frame["user"])  # benchbed ids are the authors' ids
        np.testing.assert_array_equal(raw_i, frame["item"])
    assert review_column(split.train) == "review"
    assert all(r.review == f"review {r.user} {r.item}" for r in split.train.itertuples())
    assert (split.test["review"] == "").all()  # the review of a test pair is not used
    assert split.data.stats["reviews_not_in_train"] == 1


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("evil_meta", r"meta\.pkl: not a plain-data pickle \(refusing to load posix\.getcwd\)"),
        ("shape", r"val_matrix\.npz: matrix shape \(4, 6\); expected \(4, 5\)"),
        ("prompt", r"review\.pkl entry 0: prompt 'hello' names no 'user_<i> \.\.\. item_<j>' pair"),
        ("range", r"review\.pkl entry 0: user_9 / item_0 out of meta\.pkl's 4 x 5"),
    ],
)
def test_release_layout_bad_input_is_a_one_line_error(tmp_path: Path, damage: str, match: str) -> None:
    d = tmp_path / "rel"
    write_release(d)
    if damage == "evil_meta":
        (d / "meta.pkl").write_bytes(pickle.dumps(_Evil()))
    elif damage == "shape":
        sp.save_npz(d / "val_matrix.npz", sp.csr_matrix((4, 6)))
    else:
        text = "hello" if damage == "prompt" else "user_9 writes the following review for item_0:"
        with open(d / "user_item_texts" / "review.pkl", "wb") as f:
            pickle.dump([(text, "x")], f)
    with pytest.raises(DataError, match=match):
        prepare_split(str(d))
