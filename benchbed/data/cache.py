"""The processed-data cache: parquet frames plus a manifest, one directory per content key.

An entry is ``<cache_dir>/<kind>/<name>-<key>/`` holding ``*.parquet`` files and ``manifest.json``. It is
built in a temporary sibling directory and renamed into place only when complete, so a failure never leaves a
partial entry, and an entry without its manifest does not exist. Keys hash the raw files' fingerprints, the
recipe and split parameters and ``DATA_LAYER_VERSION`` (bump it when preprocessing changes meaning).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchbed.atomic import write_json_atomic
from benchbed.settings import get_settings

DATA_LAYER_VERSION = "1"
MANIFEST = "manifest.json"
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


def read_manifest(entry: Path) -> dict[str, Any] | None:
    """The manifest of a complete entry of this data-layer version, else None."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return manifest if manifest.get("version") == DATA_LAYER_VERSION else None


@contextmanager
def building(entry: Path) -> Iterator[Path]:
    """Yield a temp directory; on success it replaces ``entry`` in one rename, on failure it is removed."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
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
    write_json_atomic(directory / MANIFEST, {"version": DATA_LAYER_VERSION, **manifest})


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
