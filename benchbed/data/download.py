"""Finding a dataset's raw files, and fetching them from the official source when they are missing.

Downloads stream into a temporary file next to the target (rich progress bar), checked against a known
size/sha256, and are renamed only on success. Offline (no network, or ``BENCHBED_OFFLINE=1``) a missing file
is a one-line ``MissingDataError`` (exit 2) naming the files expected and the directory searched; nothing is
written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import IO

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from benchbed.atomic import atomic_path
from benchbed.data.spec import DatasetSpec, Download
from benchbed.errors import DataError, MissingDataError
from benchbed.settings import get_settings


def offline() -> bool:
    return os.environ.get("BENCHBED_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _copy_with_progress(response: IO[bytes], out: IO[bytes], total: int | None, label: str) -> str:
    digest = hashlib.sha256()
    quiet = get_settings().verbosity < 0
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), disable=quiet
    ) as progress:
        task = progress.add_task(label, total=total)
        while chunk := response.read(1 << 20):
            out.write(chunk)
            digest.update(chunk)
            progress.advance(task, len(chunk))
    return digest.hexdigest()


def fetch(download: Download, target: Path) -> Path:
    """Download ``download.url`` to ``target`` atomically; raise on a size or checksum mismatch."""
    response = urllib.request.urlopen(download.url, timeout=30)  # noqa: S310 (official https/http sources)
    with response, atomic_path(target) as tmp, open(tmp, "wb") as out:
        length = response.headers.get("Content-Length")
        sha = _copy_with_progress(response, out, int(length) if length else None, target.name)
        out.flush()
        size = out.tell()
        if download.size is not None and size != download.size:
            raise DataError(f"{download.url}: got {size} bytes, expected {download.size}")
        if download.sha256 is not None and sha != download.sha256:
            raise DataError(f"{download.url}: sha256 {sha} does not match the expected {download.sha256}")
    return target


def _fetch_into(download: Download, raw_dir: Path) -> None:
    if download.extract is None:
        fetch(download, raw_dir / Path(download.url).name)
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = fetch(download, Path(tmp) / Path(download.url).name)
        with zipfile.ZipFile(archive) as zf:
            for member, name in download.extract.items():
                with zf.open(member) as src, atomic_path(raw_dir / name) as dst, open(dst, "wb") as out:
                    shutil.copyfileobj(src, out)


def _describe(spec: DatasetSpec, roles: list[str]) -> str:
    parts = []
    for role in roles:
        names = spec.files[role]
        parts.append(names[0] + (f" (or {', '.join(names[1:])})" if len(names) > 1 else ""))
    return ", ".join(parts)


def find_files(spec: DatasetSpec) -> tuple[dict[str, Path], list[str]]:
    """Present files by role, and the required roles that are missing."""
    raw_dir = spec.raw_dir()
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, names in spec.files.items():
        path = next((raw_dir / n for n in names if (raw_dir / n).is_file()), None)
        if path is not None:
            found[role] = path
        elif role not in spec.optional_files:
            missing.append(role)
    return found, missing


def resolve_files(spec: DatasetSpec, *, download: bool = True) -> dict[str, Path]:
    """The dataset's raw files by role, downloading missing ones when allowed and possible."""
    found, missing = find_files(spec)
    if not missing:
        return found
    raw_dir = spec.raw_dir()
    where = f"dataset {spec.name!r}: raw file(s) {_describe(spec, missing)} not found in {raw_dir}"
    fetchable = all(role in spec.downloads for role in missing)
    if not fetchable:
        raise MissingDataError(f"{where}; put them there (no download source is known)")
    if not download or offline():
        raise MissingDataError(f"{where}; offline, so nothing was downloaded (put the files there)")
    done: set[str] = set()
    try:
        for role in missing:
            dl = spec.downloads[role]
            if dl.url not in done:
                _fetch_into(dl, raw_dir)
                done.add(dl.url)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MissingDataError(f"{where}; download failed ({reason}); put the files there") from exc
    found, missing = find_files(spec)
    if missing:
        raise MissingDataError(f"{where}; the download did not provide them")
    return found
