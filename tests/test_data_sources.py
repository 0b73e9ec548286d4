"""Each raw-format source parsed from small files written here in the real format, including bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from benchbed.data.catalog import get_spec, spec_for_directory
from benchbed.data.download import resolve_files
from benchbed.data.prepare import load_dataset, prepare_split
from benchbed.data.sources import amazon2014, amazon2018, movielens, presplit, recbole_atomic
from benchbed.errors import DataError, MissingDataError
from benchbed.settings import Settings, get_settings, set_settings


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A private raw-data dir for this test (the session cache stays shared)."""
    base = get_settings()
    set_settings(Settings(data_dir=tmp_path / "raw", cache_dir=base.cache_dir, results_dir=base.results_dir))
    return tmp_path / "raw"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def write_gz(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
    return path


# --- RecBole atomic ---

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def test_atomic_directory_reads_titles_and_extra_columns(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    write(d / "shop.inter", INTER + "u1\ta\t5\t10\nu1\tb\t3\t20\nu2\ta\t4\t15\nu2\tb\t1\t25\nu2\tc\t2\t30\n")
    write(
        d / "shop.item", "item_id:token\tname:token_seq\tcolor:token\na\tRed Shoe\tred\nb\tBlue Hat\tblue\n"
    )
    data = load_dataset(str(d))
    assert (data.n_users, data.n_items, len(data.interactions)) == (2, 3, 5)
    titles = dict(zip(data.items["raw_id"], data.items["title"], strict=True))
    assert titles == {"a": "Red Shoe", "b": "Blue Hat", "c": "c"}  # c has no row in .item: raw id, counted
    assert data.stats["items_without_title"] == 1
    assert list(data.items["color"]) == ["red", "blue", ""]
    assert not data.labeled and (data.interactions["label"] == -1).all()
    assert data.interactions["timestamp"].is_monotonic_increasing


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("user_id:token,item_id:token,rating:float\nu1,a,5\n", r"line 1: header field .*name:type"),
        (
            INTER + "u1\ta\t5\t10\nu1\tb\t3\t20\textra\n",
            r"shop\.inter line 3: expected 4 tab-separated fields, saw 5",
        ),
        (INTER + "u1\ta\t5\t10\nu2\tb\t3\n", r"line 3: field 'timestamp' is empty"),
        (INTER + "u1\ta\t5\t10\nu2\tb\t3\tyesterday\n", r"line 3: field 'timestamp' must be numeric seconds"),
        (INTER + "u1\ta\tfive\t10\n", r"line 2: field 'rating' must be a number"),
        ("user_id:token\trating:float\nu1\t5\n", r"line 1: missing field\(s\) \['item_id'\]"),
        ("user_id:token\titem_id:weird\nu1\ta\n", r"type one of"),
        ("", r"empty file"),
    ],
)
def test_atomic_malformed_input_names_file_and_line(tmp_path: Path, body: str, match: str) -> None:
    write(tmp_path / "shop.inter", body)
    with pytest.raises(DataError, match=match):
        recbole_atomic.read_inter(tmp_path / "shop.inter")


def test_atomic_duplicate_item_ids_are_an_error(tmp_path: Path) -> None:
    write(tmp_path / "x.item", "item_id:token\ttitle:token_seq\na\tOne\nb\tTwo\na\tThree\n")
    with pytest.raises(DataError, match=r"x\.item line 4: duplicate item_id 'a'"):
        recbole_atomic.read_features(tmp_path / "x.item", "item_id")


def test_directory_without_inter_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="expected <name>.train.inter"):
        spec_for_directory(tmp_path)


# --- MovieLens raw (ml-1m) ---


def write_ml1m(d: Path) -> None:
    write(
        d / "ratings.dat",
        "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n2::30::2::978300275\n",
    )
    write(
        d / "movies.dat",
        "10::Café Society (1999)::Comedy|Drama\n20::Heat (1995)::Action\n30::Up (2009)::Animation\n",
        "latin-1",
    )
    write(d / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")


def test_movielens_raw_latin1_titles_genres_and_labels(data_dir: Path) -> None:
    write_ml1m(data_dir / "ml-1m")
    spec = get_spec("ml-1m")
    data = movielens.load(spec, resolve_files(spec, download=False))
    assert (data.n_users, data.n_items, len(data.interactions)) == (2, 3, 4)
    assert data.items["title"].tolist() == ["Café Society (1999)", "Heat (1995)", "Up (2009)"]
    assert data.items["genres"].iloc[0] == "Comedy, Drama" and data.items["year"].iloc[1] == "1995"
    assert data.users["gender"].tolist() == ["F", "M"]
    assert data.domain == "movies"
    # label = rating >= 4 (CoLLM)
    by_pair = {(int(r.user), int(r.item)): int(r.label) for r in data.interactions.itertuples()}
    assert by_pair == {(0, 0): 1, (0, 1): 0, (1, 0): 1, (1, 2): 0}


@pytest.mark.parametrize(
    ("ratings", "match"),
    [
        ("1\t10\t5\t978300760\n", r"ratings\.dat line 1: expected 4 '::'-separated fields"),
        ("1::10::5::978300760\n1::20::3\n", r"ratings\.dat line 2: expected 4 '::'-separated fields"),
        ("1::10::5::978300760\n1::20::3::soon\n", r"ratings\.dat line 2: field 'timestamp'"),
        ("1::10::5::978300760\n1::20::3::1::9\n", r"ratings\.dat line 2: expected 4"),
    ],
)
def test_movielens_malformed(tmp_path: Path, ratings: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        movielens.read_ratings(write(tmp_path / "ratings.dat", ratings))


def test_movielens_duplicate_movie_id(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"movies\.dat line 2: duplicate MovieID '10'"):
        movielens.read_movies(write(tmp_path / "movies.dat", "10::A (1990)::Drama\n10::B (1991)::Drama\n"))


def test_missing_raw_files_offline_is_exit_2_and_writes_nothing(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCHBED_OFFLINE", "1")
    with pytest.raises(MissingDataError) as err:
        prepare_split("ml-1m")
    message = str(err.value)
    assert "ratings.dat" in message and "movies.dat" in message and str(data_dir / "ml-1m") in message
    assert "\n" not in message and err.value.exit_code == 2
    assert not data_dir.exists()


# --- Amazon 2018 / 2014 ---


def review(user: str, asin: str, rating: float, ts: int) -> str:
    return json.dumps(
        {"reviewerID": user, "asin": asin, "overall": rating, "unixReviewTime": ts, "reviewText": "ok"}
    )


def test_amazon2018_gzip_and_plain_meta(tmp_path: Path) -> None:
    reviews = write_gz(
        tmp_path / "Books_5.json.gz", [review("A", "b1", 5.0, 100), review("B", "b2", 3.0, 200)]
    )
    meta = write(
        tmp_path / "meta_Books.json",
        json.dumps({"asin": "b1", "title": "Dune", "brand": "Ace", "category": ["Books", "SciFi"]})
        + "\n"
        + json.dumps({"asin": "b2", "title": ""})  # no title: skipped and counted
        + "\n"
        + json.dumps({"asin": "b1", "title": "Dune again"})  # duplicate asin: first wins, counted
        + "\n",
    )
    frame, outside = amazon2018.read_reviews(reviews, json.loads, None, None)
    assert frame["item_raw"].tolist() == ["b1", "b2"] and outside == 0
    items, skipped = amazon2018.read_meta(meta, json.loads, {"b1", "b2"}, amazon2018.categories)
    assert items.to_dict("records") == [
        {"raw_id": "b1", "title": "Dune", "brand": "Ace", "categories": "Books > SciFi", "description": ""}
    ]
    assert skipped == {"meta_without_title": 1, "meta_duplicate_asin": 1}


def test_amazon_truncated_gzip_and_malformed_line(tmp_path: Path) -> None:
    good = write_gz(tmp_path / "a.json.gz", [review("A", f"b{i}", 5.0, i) for i in range(2000)])
    truncated = tmp_path / "Books_5.json.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"Books_5\.json\.gz: truncated or corrupt gzip after line \d+"):
        amazon2018.read_reviews(truncated, json.loads, None, None)
    bad = write_gz(
        tmp_path / "bad.json.gz",
        [review("A", "b1", 5.0, 1), '{"reviewerID": "B", "asin": ', review("C", "b", 1, 2)],
    )
    with pytest.raises(DataError, match=r"bad\.json\.gz line 2: not a valid record"):
        amazon2018.read_reviews(bad, json.loads, None, None)
    missing = write_gz(tmp_path / "m.json.gz", [json.dumps({"reviewerID": "A", "asin": "b1", "overall": 5})])
    with pytest.raises(DataError, match=r"m\.json\.gz line 1: missing field\(s\) \['unixReviewTime'\]"):
        amazon2018.read_reviews(missing, json.loads, None, None)


def test_amazon2014_python_literal_meta_and_iterative_5core(data_dir: Path) -> None:
    d = data_dir / "amazon-beauty"
    lines = [
        review(f"a{u}", f"b{i}", 5.0, 1000 + 10 * u + i) for u in range(5) for i in range(5)
    ]  # 25-row core
    lines += [review("x", f"b{i}", 4.0, 2000 + i) for i in range(4)] + [review("x", "y", 4.0, 2010)]
    lines += [review(f"z{k}", "y", 3.0, 3000 + k) for k in range(3)]
    write_gz(d / "reviews_Beauty_5.json.gz", lines)
    meta = [
        repr({"asin": f"b{i}", "title": f"Lipstick {i}", "categories": [["Beauty", "Makeup"]]})
        for i in range(4)
    ]
    meta.append(repr({"asin": "b4", "salesRank": {"Beauty": 3}}))  # Python literal, no title
    write_gz(d / "meta_Beauty.json.gz", meta)
    data = load_dataset("amazon-beauty")
    # iterative: z* (<5) go, then y (4 left) goes, then x (4 left) goes -> only the 5x5 core stays
    assert (data.n_users, data.n_items, len(data.interactions)) == (5, 5, 25)
    assert data.stats["removed_by_count_filter"] == 8
    assert data.items["title"].tolist()[:2] == ["Lipstick 0", "Lipstick 1"]
    assert data.items["categories"].iloc[0] == "Beauty > Makeup"
    assert data.stats["meta_without_title"] == 1 and data.items["title"].iloc[4] == "b4"
    assert not data.labeled and data.domain == "items"


def test_amazon2014_literal_parser_rejects_code(tmp_path: Path) -> None:
    bad = write(tmp_path / "meta.json", "{'asin': 'b1', 'title': __import__('os').getcwd()}\n")
    with pytest.raises(DataError, match=r"meta\.json line 1: not a valid record"):
        amazon2014.read_meta(bad, amazon2014.parse_line, {"b1"}, amazon2014.categories)


# --- pre-split directory ---

LABELED = "user_id:token\titem_id:token\tlabel:float\ttimestamp:float\n"


def test_presplit_directory_keeps_the_given_split(tmp_path: Path) -> None:
    d = tmp_path / "mysplit"
    write(d / "my.train.inter", LABELED + "u1\ta\t1\t1\nu1\tb\t0\t2\nu2\ta\t1\t3\nu2\tc\t1\t4\n")
    write(d / "my.valid.inter", LABELED + "u1\tc\t1\t5\n")
    write(d / "my.test.inter", LABELED + "u2\tb\t0\t6\nu1\td\t1\t7\n")
    write(d / "my.item", "item_id:token\ttitle:token_seq\na\tAlpha\nb\tBeta\nc\tGamma\nd\tDelta\n")
    prepared = prepare_split(str(d))
    split = prepared.split
    assert split.protocol == "presplit" and (len(split.train), len(split.valid), len(split.test)) == (4, 1, 2)
    raw = split.data.items["raw_id"]
    assert sorted(raw[split.test["item"]].tolist()) == ["b", "d"]
    assert split.labeled and split.data.items["title"].tolist() == ["Alpha", "Beta", "Gamma", "Delta"]
    # u1's test row at t=7 sees its earlier positives a (t=1) and c (valid, t=5), not b (label 0)
    u1_test = split.test[split.test["user"] == 0].iloc[0]
    assert raw[u1_test["history"]].tolist() == ["a", "c"]


@pytest.mark.parametrize(
    ("train", "match"),
    [
        (LABELED.replace("label", "lable") + "u1\ta\t1\t1\n", r"unknown column\(s\) \['lable'\]"),
        (LABELED + "u1\ta\t2\t1\n", r"field 'label' must be 0 or 1"),
        ("user_id:token\titem_id:token\ttimestamp:float\nu1\ta\t1\n", r"'label' column in some files only"),
        (LABELED, r"the train file has no rows"),
        (LABELED + "u1\tz\t1\t1\n", r"1 test interaction\(s\) also in train, e.g. user 'u1' item 'z'"),
    ],
)
def test_presplit_bad_input(tmp_path: Path, train: str, match: str) -> None:
    d = tmp_path / "bad"
    write(d / "b.train.inter", train)
    write(d / "b.valid.inter", LABELED + "u1\ty\t1\t5\n")
    write(d / "b.test.inter", LABELED + "u1\tz\t0\t6\n")
    with pytest.raises(DataError, match=match):
        prepare_split(str(d))


def test_presplit_module_load_returns_union(tmp_path: Path) -> None:
    d = tmp_path / "p"
    for part, row in (("train", "u1\ta\t1\t1\n"), ("valid", "u1\tb\t1\t2\n"), ("test", "u1\tc\t0\t3\n")):
        write(d / f"p.{part}.inter", LABELED + row)
    spec = spec_for_directory(d)
    data = presplit.load(spec, resolve_files(spec, download=False))
    assert len(data.interactions) == 3 and "part" not in data.interactions
