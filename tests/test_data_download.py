"""Fetching missing raw files via file:// URLs (the same urllib path, no network), checks, extraction."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from benchbed.data.catalog import DatasetSpec, Download
from benchbed.data.download import resolve_files
from benchbed.errors import DataError, MissingDataError


def spec_with(raw: Path, downloads: dict[str, Download], files: dict[str, tuple[str, ...]]) -> DatasetSpec:
    return DatasetSpec(
        name="dl",
        source="test",
        loader="benchbed.data.sources.movielens:load",
        files=files,
        default_split="temporal-window",
        downloads=downloads,
        directory=raw,
    )


def test_zip_download_is_extracted_into_the_raw_dir(tmp_path: Path) -> None:
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "1::10::5::978300760\n")
        zf.writestr("ml-1m/movies.dat", "10::A (1990)::Drama\n")
    dl = Download(
        archive.as_uri(), extract={"ml-1m/ratings.dat": "ratings.dat", "ml-1m/movies.dat": "movies.dat"}
    )
    raw = tmp_path / "raw"
    files = resolve_files(spec_with(raw, {"r": dl, "m": dl}, {"r": ("ratings.dat",), "m": ("movies.dat",)}))
    assert files["r"].read_text() == "1::10::5::978300760\n" and files["m"].parent == raw
    assert sorted(p.name for p in raw.iterdir()) == ["movies.dat", "ratings.dat"]  # no temp files left


def test_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "Books_5.json.gz"
    source.write_bytes(b"payload")
    raw = tmp_path / "raw"
    good = hashlib.sha256(b"payload").hexdigest()
    ok = spec_with(raw, {"r": Download(source.as_uri(), sha256=good, size=7)}, {"r": ("Books_5.json.gz",)})
    assert resolve_files(ok)["r"].read_bytes() == b"payload"
    bad = spec_with(
        tmp_path / "raw2", {"r": Download(source.as_uri(), sha256="0" * 64)}, {"r": ("Books_5.json.gz",)}
    )
    with pytest.raises(DataError, match="does not match the expected"):
        resolve_files(bad)
    assert not any((tmp_path / "raw2").iterdir())


def test_unreachable_source_is_missing_data(tmp_path: Path) -> None:
    gone = Download((tmp_path / "nowhere.zip").as_uri())
    spec = spec_with(tmp_path / "raw", {"r": gone}, {"r": ("nowhere.zip", "nowhere.json")})
    with pytest.raises(
        MissingDataError, match=r"nowhere\.zip \(or nowhere\.json\) not found in .*download failed"
    ):
        resolve_files(spec)
    assert not (tmp_path / "raw").exists()
