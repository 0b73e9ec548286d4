"""Records whose data changed since they ran: ``run`` ignores them (and runs again); the leaderboard
leaves them out with a note instead of showing them as a second, unmarked row beside the current one.

Staleness is judged only from what is known without downloading or building: a directory dataset's raw
files (their hash is part of the record's id), or the cached split of the current data. A record whose
data cannot be checked that way is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchbed.config import RunConfig
from benchbed.errors import BenchbedError
from benchbed.results.record import RunRecord
from benchbed.results.store import record_path


def _current(config: dict[str, Any], record: RunRecord, known: dict[str, Any]) -> Any:
    from benchbed.data.prepare import known_identity

    key = repr((config.get("dataset"), record.split_protocol, sorted((record.split_params or {}).items())))
    if key not in known:
        try:
            known[key] = known_identity(
                str(config.get("dataset")), record.split_protocol, record.split_params
            )
        except (BenchbedError, OSError, ValueError, KeyError):
            known[key] = (None, None)  # the data is not here (or no longer a dataset): cannot tell
    return known[key]


def stale_reason(path: Path, record: RunRecord, known: dict[str, Any]) -> str | None:
    """Why ``record`` (at ``path``) ran on data other than the data now, or None (current, or unknown)."""
    if record.status != "ok":
        return None
    try:
        config = RunConfig.from_dict(dict(record.config), source=str(path))
    except BenchbedError:
        return None
    files_hash, identity = _current(record.config, record, known)
    if files_hash is not None:
        expected = record_path(path.parent, config, files_hash).name
        if path.name != expected and path.name.endswith(f"-s{config.seed}.json"):
            return f"the files of {record.config.get('dataset')} changed since this run"
        return None
    # a record that names no hashes (written by hand, or before they existed) cannot be judged: kept
    known_hashes = record.dataset_hash is not None and record.split_hash is not None
    if (
        identity is not None
        and known_hashes
        and (record.dataset_hash, record.split_hash)
        != (
            identity.data_hash,
            identity.split_hash,
        )
    ):
        return (
            f"the data or split of {record.dataset} changed since this run (split {identity.split_hash} now)"
        )
    return None


def split_stale(
    records: list[tuple[Path, RunRecord]],
) -> tuple[list[tuple[Path, RunRecord]], list[tuple[Path, str]]]:
    """(current records, [(path, why stale)]) — the order of ``records`` kept."""
    known: dict[str, Any] = {}
    kept, stale = [], []
    for path, record in records:
        why = stale_reason(Path(path), record, known)
        if why is None:
            kept.append((path, record))
        else:
            stale.append((path, why))
    return kept, stale
