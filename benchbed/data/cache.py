"""The processed-data cache: parquet frames plus a manifest, one directory per content key.

An entry is ``<cache_dir>/<kind>/<name>-<key>/`` holding ``*.parquet`` files and ``manifest.json``. It is
built in a temporary sibling directory and renamed into place only when complete, so a failure never leaves a
partial entry, and an entry without its manifest does not exist. Keys hash the raw files' fingerprints, the
recipe and split parameters and ``DATA_LAYER_VERSION`` (bump it when preprocessing changes meaning).

The manifest lists every frame file with its size and sha256 (:func:`write_manifest`), and
:func:`read_manifest` checks them on every read: an entry whose files were altered, truncated or replaced
is not trusted but rebuilt, with a warning (issue 14: an edited cached split produced a record with the old
split hash and new metrics). The check hashes the whole file; ``benchmarks/perf_cache_verify.py`` measures
its cost: 2-4 ms per MB on the shared 2-core dev machine (ml-100k's 1.4 MB split entry 1.3-5.6 ms, its data
entry 0.7 ms, against 330-385 ms for the whole cache-hit ``prepare_split``; a 264 MB entry 0.6-1.0 s). An
entry is hashed once per process unless its files' size or mtime change.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchbed.atomic import write_json_atomic
from benchbed.errors import BenchbedError, DataError
from benchbed.settings import get_settings

T = TypeVar("T")

DATA_LAYER_VERSION = "2"
MANIFEST = "manifest.json"
log = logging.getLogger(__name__)
_FULL_HASH_LIMIT = 256 << 20  # bigger raw files: size + head/tail hash (hashing GBs on every run is too slow)


def fingerprint(path: Path) -> dict[str, Any]:
    """What identifies a raw file's content: its name, size and a sha256 (of the ends for huge files)."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= _FULL_HASH_LIMIT:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
        else:
            h.update(fh.read(8 << 20))
            fh.seek(size - (8 << 20))
            h.update(fh.read())
    return {"name": path.name, "size": size, "sha256": h.hexdigest()}


def entry_dir(kind: str, name: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    return get_settings().cache_dir / kind / f"{safe}-{key}"


def file_checksums(directory: Path) -> dict[str, dict[str, Any]]:
    """``{file name: {"size": bytes, "sha256": hex}}`` of an entry's frame files."""
    out = {}
    for path in sorted(Path(directory).glob("*.parquet")):
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
        out[path.name] = {"size": path.stat().st_size, "sha256": h.hexdigest()}
    return out


def verify_entry(entry: Path, manifest: dict[str, Any]) -> str | None:
    """Why ``entry``'s files do not match ``manifest`` (None when they do): size first, then the hash."""
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        return "its manifest lists no file checksums"
    for name, want in sorted(listed.items()):
        path = entry / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{name} is missing"
        said = want.get("size") if isinstance(want, dict) else want
        if size != said:
            return f"{name} has {size} bytes, its manifest says {said}"
    stamp = _stamp(entry, manifest)
    if _VERIFIED.get(entry) == stamp:  # hashed already in this process and untouched since
        return None
    actual = file_checksums(entry)
    for name, want in sorted(listed.items()):
        if actual.get(name, {}).get("sha256") != (want.get("sha256") if isinstance(want, dict) else None):
            return f"{name} does not match its sha256 in the manifest"
    extra = sorted(set(actual) - set(listed))
    if extra:
        return f"{extra[0]} is not in its manifest"
    _VERIFIED[entry] = stamp
    return None


# entry -> (manifest checksums, files' (name, size, mtime_ns)) of entries this process has hashed: a run
# reads the split manifest twice (record lookup, then the split), and hashing a big entry twice costs seconds
_VERIFIED: dict[Path, tuple[Any, ...]] = {}


def _stamp(entry: Path, manifest: dict[str, Any]) -> tuple[Any, ...]:
    files = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(entry.glob("*.parquet")))
    return (json.dumps(manifest.get("files"), sort_keys=True), files)


def read_manifest(entry: Path) -> dict[str, Any] | None:
    """The manifest of a complete, intact entry of this data-layer version, else None (then the caller
    rebuilds it). An entry whose files do not match the manifest's checksums is reported with a warning."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("version") != DATA_LAYER_VERSION:
        return None
    problem = verify_entry(entry, manifest)
    if problem is not None:
        log.warning("cache entry %s is not intact (%s); rebuilding it", entry, problem)
        return None
    return manifest


@contextmanager
def building(entry: Path) -> Iterator[Path]:
    """Yield a temp directory; on success it replaces ``entry`` in one rename, on failure it is removed."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
    except OSError as exc:
        raise BenchbedError(
            f"cache directory {entry.parent}: cannot write there ({exc.strerror}); make it writable or "
            "pass --cache-dir (BENCHBED_CACHE) with a writable path"
        ) from exc
    tmp.chmod(0o755)  # mkdtemp makes it private; a cache entry is an ordinary directory
    try:
        yield tmp
        if entry.exists():
            shutil.rmtree(entry)
        try:
            os.rename(tmp, entry)
        except OSError:  # another process finished the same entry first: theirs is as good as ours
            if read_manifest(entry) is None:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_frames(directory: Path, frames: dict[str, pd.DataFrame]) -> None:
    for name, frame in frames.items():
        frame.to_parquet(directory / f"{name}.parquet", index=False)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest last, with the checksums of the frame files already in ``directory``."""
    payload = {"version": DATA_LAYER_VERSION, **manifest, "files": file_checksums(directory)}
    write_json_atomic(directory / MANIFEST, payload)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic GC while building 1e5-1e6 small lists: it would rescan them, tripling the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_frame(entry: Path, name: str) -> pd.DataFrame:
    """A cached frame; list columns come back as Python lists (as built), not numpy arrays."""
    table = pq.read_table(entry / f"{name}.parquet")
    list_cols = [f.name for f in table.schema if pa.types.is_list(f.type)]
    frame = table.drop_columns(list_cols).to_pandas()
    for col in list_cols:
        array = table.column(col).combine_chunks()
        offsets = array.offsets.to_numpy().tolist()
        flat = array.values.to_numpy(zero_copy_only=False).tolist()
        with paused_gc():
            lists = [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        frame.insert(table.schema.get_field_index(col), col, pd.Series(lists, dtype=object))
    return frame


def memo_or_json(
    memo: dict[Any, T],
    key: Any,
    path: Path,
    what: str,
    load: Callable[[Any], T],
    build: Callable[[], T],
    dump: Callable[[T], Any],
) -> T:
    """A split's derived object (an item index, an item split) from this process's memo, else its JSON file
    on disk, else built and written (atomically); an unreadable file is a one-line error naming it."""
    if key in memo:
        return memo[key]
    if path.exists():
        try:
            value = load(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError) as exc:
            raise DataError(f"{path}: unreadable {what}; delete it to rebuild") from exc
    else:
        value = build()
        write_json_atomic(path, dump(value))
    memo[key] = value
    return value
