"""The parquet cache: hit, miss after a parameter or raw-file change, and no partial entry after a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbed.data import cache
from benchbed.data.prepare import prepare_split
from benchbed.settings import Settings, get_settings, set_settings


@pytest.fixture
def private_cache(tmp_path: Path) -> Path:
    base = get_settings()
    set_settings(Settings(data_dir=base.data_dir, cache_dir=tmp_path / "cache", results_dir=base.results_dir))
    return tmp_path / "cache"


def make_dataset(root: Path, n_users: int = 6) -> Path:
    d = root / "tiny"
    d.mkdir(parents=True, exist_ok=True)
    rows = [
        f"u{u}\ti{(u * 3 + k) % 7}\t{(u + k) % 5 + 1}\t{100 * u + k}"
        for u in range(n_users)
        for k in range(5)
    ]
    (d / "tiny.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "\n".join(rows) + "\n"
    )
    return d


def test_hit_then_miss_after_parameter_or_file_change(tmp_path: Path, private_cache: Path) -> None:
    d = make_dataset(tmp_path)
    first = prepare_split(str(d), "leave-one-out")
    assert not first.cache_hit and first.stats["data_cache_hit"] is False
    second = prepare_split(str(d), "leave-one-out")
    assert second.cache_hit and second.split.hash == first.split.hash
    changed = prepare_split(str(d), "leave-one-out", {"warm_threshold": 1})
    assert not changed.cache_hit and changed.stats["data_cache_hit"] is True  # same data, new split
    make_dataset(tmp_path, n_users=7)  # the raw file changes: new data key
    grown = prepare_split(str(d), "leave-one-out")
    assert not grown.cache_hit and grown.stats["data_cache_hit"] is False and grown.stats["users"] == 7
    forced = prepare_split(str(d), "leave-one-out", force=True)
    assert not forced.cache_hit and forced.split.hash == grown.split.hash
    manifests = sorted(p.parent.parent.name for p in private_cache.rglob(cache.MANIFEST))
    assert manifests == ["data"] * 2 + ["splits"] * 3


def test_failure_while_writing_leaves_no_partial_entry(
    tmp_path: Path, private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = make_dataset(tmp_path)

    def broken(directory: Path, manifest: dict) -> None:  # type: ignore[type-arg]
        (directory / "half-written.json").write_text("{")
        raise OSError("disk full")

    original = cache.write_manifest
    monkeypatch.setattr(cache, "write_manifest", broken)
    with pytest.raises(OSError, match="disk full"):
        prepare_split(str(d), "leave-one-out")
    assert not [p for p in private_cache.rglob("*") if p.is_file()]
    monkeypatch.setattr(cache, "write_manifest", original)
    assert not prepare_split(str(d), "leave-one-out").cache_hit  # and it builds fine afterwards
    assert prepare_split(str(d), "leave-one-out").cache_hit


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("one")
    before = cache.fingerprint(a)
    a.write_text("two")
    assert cache.fingerprint(a)["sha256"] != before["sha256"] and before["size"] == 3
