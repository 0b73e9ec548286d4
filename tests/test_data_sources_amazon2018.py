"""RA-Rec's Amazon 2018 recipe (seed 004 §4.1.1) on files written in the real raw formats.

The ratings-only CSV (``item,user,rating,timestamp``, no header), the full-review JSON lines and the meta JSON
lines are written here as the McAuley lab publishes them; titles longer than 200 characters and empty ones
are invalid, users need 3 interactions with valid items, then a seeded sample of users is kept.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import pytest

from benchbed.data.catalog import get_spec
from benchbed.data.prepare import load_dataset
from benchbed.data.sources import amazon2018
from benchbed.errors import DataError
from benchbed.settings import Settings, get_settings, set_settings


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    base = get_settings()
    set_settings(Settings(data_dir=tmp_path / "raw", cache_dir=base.cache_dir, results_dir=base.results_dir))
    yield tmp_path / "raw"
    set_settings(base)


def write_gz(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
    return path


def meta_lines() -> list[str]:
    """b0..b4 valid, b5 a 201-character title, b6 an empty title."""
    rows = [{"asin": f"b{i}", "title": f"Book {i}", "category": ["Books", "Fiction"]} for i in range(5)]
    rows.append({"asin": "b5", "title": "x" * 201, "category": ["Books"]})
    rows.append({"asin": "b6", "title": "", "category": ["Books"]})
    return [json.dumps(r) for r in rows]


# u1: 3 valid; u2: 2 valid + the long-titled b5 (2 left: dropped); u3: 4 valid; u4: 1 valid + b6 (dropped)
RATINGS = [
    ("b0", "u1", 5.0, 100),
    ("b1", "u1", 4.0, 101),
    ("b2", "u1", 3.0, 102),
    ("b0", "u2", 5.0, 110),
    ("b5", "u2", 5.0, 111),
    ("b3", "u2", 2.0, 112),
    ("b1", "u3", 5.0, 120),
    ("b2", "u3", 5.0, 121),
    ("b3", "u3", 5.0, 122),
    ("b4", "u3", 5.0, 123),
    ("b4", "u4", 5.0, 130),
    ("b6", "u4", 5.0, 131),
]


def test_ratings_csv_recipe_drops_long_titles_short_users_and_samples(data_dir: Path) -> None:
    d = data_dir / "amazon-books-rarec"
    d.mkdir(parents=True)
    (d / "Books.csv").write_text("".join(f"{i},{u},{r},{t}\n" for i, u, r, t in RATINGS))
    write_gz(d / "meta_Books.json.gz", meta_lines())
    data = load_dataset("amazon-books-rarec")
    assert sorted(data.users["raw_id"]) == ["u1", "u3"]
    assert sorted(data.items["title"]) == [f"Book {i}" for i in range(5)]
    assert len(data.interactions) == 7 and not data.labeled
    assert data.stats["meta_title_too_long"] == 1 and data.stats["meta_without_title"] == 1
    assert data.stats["interactions_without_valid_title"] == 2
    assert data.stats["users_below_min_count"] == 2 and data.stats["users_not_sampled"] == 0
    assert get_spec("amazon-books-rarec").default_split == "leave-one-out"
    assert get_spec("clothing-rarec").options["sample_users"] == 100_000


def test_full_review_json_and_a_seeded_user_sample(tmp_path: Path) -> None:
    reviews = write_gz(
        tmp_path / "Books.json.gz",
        [
            json.dumps({"reviewerID": u, "asin": i, "overall": r, "unixReviewTime": t, "reviewText": "."})
            for i, u, r, t in RATINGS
        ],
    )
    meta = write_gz(tmp_path / "meta_Books.json.gz", meta_lines())
    files = {"reviews": reviews, "meta": meta}
    base = get_spec("amazon-books-rarec")
    one = replace(base, options={**base.options, "sample_users": 1})
    first = amazon2018.load(one, files)
    again = amazon2018.load(one, files)
    assert first.n_users == 1 and first.stats["users_not_sampled"] == 1
    assert first.users["raw_id"].tolist() == again.users["raw_id"].tolist()  # seeded
    picks = {
        amazon2018.load(replace(one, options={**one.options, "sample_seed": s}), files).users["raw_id"][0]
        for s in range(8)
    }
    assert picks == {"u1", "u3"}  # only eligible users are drawn, and the seed changes the draw
    with pytest.raises(DataError, match=r"option sample_users=0; expected a positive integer"):
        amazon2018.load(replace(base, options={**base.options, "sample_users": 0}), files)


def test_malformed_ratings_csv_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "Books.csv"
    bad.write_text("b0,u1,5.0,100\nb1,u1,5.0\n")
    with pytest.raises(DataError, match=r"Books\.csv line 2: expected 4 comma-separated fields"):
        amazon2018.read_ratings_csv(bad)
    bad.write_text("b0,u1,five,100\n")
    with pytest.raises(DataError, match=r"Books\.csv line 1: rating and timestamp must be numbers"):
        amazon2018.read_ratings_csv(bad)
