"""Dataset name -> cached ``InteractionData`` -> cached ``Split``: the one entry point methods and tasks use.

``prepare_split("ml-100k")`` finds the raw files (downloading when missing and possible), applies the catalog
recipe, draws the protocol's split, adds histories and warm/cold flags, runs the leakage check and caches
everything as parquet keyed by content hashes. A second call with the same inputs is a cache hit that reads
only parquet.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchbed.config import stable_hash
from benchbed.data import cache, filters
from benchbed.data.catalog import DatasetSpec, get_spec
from benchbed.data.download import resolve_files
from benchbed.data.enrich import add_flags, add_histories
from benchbed.data.leakage import check_split
from benchbed.data.schema import InteractionData, Split
from benchbed.data.splits import Assignment, Protocol
from benchbed.errors import ConfigError, DataError
from benchbed.registry import SPLITS, import_target

log = logging.getLogger(__name__)
PART_CODES = {"train": 0, "valid": 1, "test": 2}


@dataclass
class PreparedSplit:
    """A split plus whether it came from the cache and the counts ``datasets prepare`` prints."""

    split: Split
    cache_hit: bool
    stats: dict[str, Any]


@dataclass
class _DataEntry:
    data: InteractionData
    parts: np.ndarray | None  # pre-split datasets: 0/1/2 per interaction row
    key: str
    cache_hit: bool
    pending: dict[str, Any] | None = None  # a fresh build not yet written: what ``_save_data`` writes

    def save(self) -> None:
        """Write a freshly built entry (after its split passed the checks, so a failure caches nothing)."""
        if self.pending is not None:
            _save_data(self, **self.pending)
            self.pending = None


def _data_key(spec: DatasetSpec, download: bool = True) -> tuple[str, dict[str, Any]]:
    files = resolve_files(spec, download=download)
    prints = {role: cache.fingerprint(path) for role, path in sorted(files.items())}
    key = stable_hash(
        {
            "name": spec.name,
            "source": spec.source,
            "loader": spec.loader,
            "recipe": spec.recipe,
            "options": spec.options,
            "domain": spec.domain,
            "files": prints,
            "version": cache.DATA_LAYER_VERSION,
        },
        length=16,
    )
    return key, {"files": files, "fingerprints": prints}


def _read_data(entry: Any, manifest: dict[str, Any]) -> tuple[InteractionData, np.ndarray | None]:
    items = cache.read_frame(entry, "items")
    users = cache.read_frame(entry, "users")
    data = InteractionData(
        name=manifest["name"],
        interactions=cache.read_frame(entry, "interactions"),
        items=items,
        users=users,
        stats=manifest["stats"],
        domain=manifest["domain"],
    )
    parts = cache.read_frame(entry, "parts")["part"].to_numpy() if manifest.get("presplit") else None
    return data, parts


def _dataset(
    spec: DatasetSpec, force: bool, download: bool = True, keyed: tuple[str, dict[str, Any]] | None = None
) -> _DataEntry:
    key, info = keyed or _data_key(spec, download)
    entry = cache.entry_dir("data", spec.name, key)
    manifest = None if force else cache.read_manifest(entry)
    if manifest is not None:
        data, parts = _read_data(entry, manifest)
        return _DataEntry(data, parts, key, cache_hit=True)
    log.info("building %s from %s", spec.name, info["files"])
    parts = None
    if spec.default_split == "presplit":  # the source's module gives the parts (presplit, cllm4rec_release)
        module = spec.loader.partition(":")[0]
        data, parts = import_target(f"{module}:load_with_parts")(spec, info["files"])
    else:
        data = import_target(spec.loader)(spec, info["files"])
    data.domain = spec.domain
    data.validate()
    pending = {"entry": entry, "fingerprints": info["fingerprints"], "recipe": spec.recipe}
    return _DataEntry(data, parts, key, cache_hit=False, pending=pending)


def _save_data(built: _DataEntry, entry: Any, fingerprints: dict[str, Any], recipe: dict[str, Any]) -> None:
    data, parts, key = built.data, built.parts, built.key
    with cache.building(entry) as tmp:
        frames = {"interactions": data.interactions, "items": data.items, "users": data.users}
        if parts is not None:
            frames["parts"] = pd.DataFrame({"part": parts.astype(np.int8)})
        cache.write_frames(tmp, frames)
        cache.write_manifest(
            tmp,
            {
                "name": data.name,
                "key": key,
                "domain": data.domain,
                "content_hash": data.content_hash(),
                "stats": data.stats,
                "presplit": parts is not None,
                "fingerprints": fingerprints,
                "recipe": recipe,
            },
        )


def load_dataset(name: str, *, force: bool = False, download: bool = True) -> InteractionData:
    """The preprocessed (cached) data of a catalog name or a dataset directory."""
    built = _dataset(get_spec(name), force, download)
    built.save()
    return built.data


def _protocol(spec: DatasetSpec, split: str | None) -> Protocol:
    name = split or spec.default_split
    protocol = SPLITS.get(name)
    if not isinstance(protocol, Protocol):
        raise DataError(f"split protocol {name!r}: registry entry is not a Protocol")
    if (protocol.name == "presplit") != (spec.default_split == "presplit"):
        raise DataError(
            f"dataset {spec.name!r}: protocol {protocol.name!r} does not apply "
            + (
                "(a pre-split directory only takes 'presplit')"
                if spec.default_split == "presplit"
                else "(no pre-split files)"
            )
        )
    return protocol


def _assign(
    protocol: Protocol, entry: _DataEntry, params: dict[str, Any], data: InteractionData
) -> Assignment:
    """The parts of ``data`` (``entry.data`` after the split's filters): drawn, or the pre-split files'."""
    if entry.parts is None:
        return protocol(data, params)
    if filters.active(params):  # the files fix the parts; filtering them would be another split
        raise ConfigError(
            f"dataset {entry.data.name!r}: split parameters {filters.params_text(params)} apply to drawn "
            "splits only, not to a pre-split directory"
        )
    order = np.arange(len(entry.parts))
    return Assignment(*(order[entry.parts == code] for code in PART_CODES.values()))


def _frames(data: InteractionData, assignment: Assignment, params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    frames = {
        part: data.interactions.iloc[np.asarray(getattr(assignment, part))].reset_index(drop=True)
        for part in PART_CODES
    }
    add_histories(frames, int(params["history_len"]))
    for part in ("valid", "test"):
        add_flags(frames[part], frames["train"], data, int(params["warm_threshold"]))
    return frames


def _split_stats(split: Split, extra: dict[str, Any]) -> dict[str, Any]:
    data = split.data
    used = pd.concat([f[["user", "item"]] for f in split.frames().values()])
    stats: dict[str, Any] = {
        "dataset": data.name,
        "protocol": split.protocol,
        "params": split.params,
        "users": data.n_users,
        "items": data.n_items,
        "interactions": len(data.interactions),
        "split_users": int(used["user"].nunique()),
        "split_items": int(used["item"].nunique()),
        **{part: len(frame) for part, frame in split.frames().items()},
    }
    if split.labeled:
        for part, frame in split.frames().items():
            stats[f"positive_rate_{part}"] = round(float(frame["label"].mean()), 4)
    for part in ("valid", "test"):
        frame = getattr(split, part)
        stats[f"{part}_warm"] = int(frame["warm"].sum())
        stats[f"{part}_cold"] = int((~frame["warm"]).sum())
        stats[f"{part}_cold_user"] = int((~frame["user_warm"]).sum())
        stats[f"{part}_cold_item"] = int((~frame["item_warm"]).sum())
        stats[f"{part}_item_unseen"] = int(frame["item_unseen"].sum())
    stats.update(extra)
    return stats


def _read_split(entry: Any, data: InteractionData, manifest: dict[str, Any]) -> Split:
    frames = {}
    for part in PART_CODES:
        frames[part] = cache.read_frame(entry, part)
    return Split(
        data=data,
        protocol=manifest["protocol"],
        params=manifest["params"],
        hash=manifest["hash"],
        **frames,
    )


@dataclass
class SplitIdentity:
    """What a run's result depends on in the data: content hashes, not the ``--dataset`` string.

    ``data_hash``/``split_hash`` are those a record stores (``InteractionData.content_hash``,
    ``Split.hash``); ``files_hash`` hashes a directory dataset's raw files (names, sizes, sha256), known
    before anything is loaded; ``path`` is its resolved directory, a label only. ``prepared`` is the split
    when it had to be built to learn the hashes (the caller reuses it).
    """

    data_hash: str
    split_hash: str
    files_hash: str | None
    path: str | None
    prepared: PreparedSplit | None = None


def split_identity(
    dataset: str, split: str | None = None, split_params: dict[str, Any] | None = None
) -> SplitIdentity:
    """The content identity of a split: from the (verified) cache manifest when cached, else by building it.

    Unknown datasets, protocols and split parameters raise here, before a run writes anything.
    """
    where = _locate(dataset, split, split_params, download=True)
    cached = where.cached_identity()
    if cached is not None:
        return cached
    prepared = prepare_split(dataset, split, split_params)
    split_hash = prepared.split.key
    return SplitIdentity(
        prepared.split.data.content_hash(), split_hash, where.files_hash, where.path, prepared
    )


def known_identity(
    dataset: str, split: str | None = None, split_params: dict[str, Any] | None = None
) -> tuple[str | None, SplitIdentity | None]:
    """What is known of a split's identity *now* without downloading or building anything (leaderboards
    mark records of data that changed since): a directory dataset's ``files_hash`` (None for a catalog
    one), and the identity when the current data's split is cached (else None)."""
    where = _locate(dataset, split, split_params, download=False)
    return where.files_hash, where.cached_identity()


@dataclass(frozen=True)
class _Located:
    """Where a split of a dataset lives in the cache: its spec, protocol, resolved parameters and keys."""

    spec: DatasetSpec
    protocol: Protocol
    params: dict[str, Any]
    keyed: tuple[str, dict[str, Any]]
    key: str
    entry: Path

    @property
    def files_hash(self) -> str | None:
        """A directory dataset's raw files (names, sizes, sha256); None for a catalog dataset."""
        directory = getattr(self.spec, "directory", None)
        return stable_hash(self.keyed[1]["fingerprints"], 16) if directory is not None else None

    @property
    def path(self) -> str | None:
        directory = getattr(self.spec, "directory", None)
        return str(directory) if directory is not None else None

    def cached_identity(self) -> SplitIdentity | None:
        """The identity the cache manifest states, when the split is cached with its hashes."""
        manifest = cache.read_manifest(self.entry)
        data_hash = (manifest or {}).get("stats", {}).get("data_hash")
        if manifest is None or not data_hash or not manifest.get("hash"):
            return None
        return SplitIdentity(str(data_hash), str(manifest["hash"]), self.files_hash, self.path)


def _locate(
    dataset: str, split: str | None, split_params: dict[str, Any] | None, *, download: bool
) -> _Located:
    """Resolve dataset, protocol and parameters (unknown ones raise) and the split's cache entry."""
    spec = get_spec(dataset)
    protocol = _protocol(spec, split)
    params = protocol.resolve({**spec.split_defaults(protocol.name), **(split_params or {})})
    keyed = _data_key(spec, download)
    key = _split_key(keyed[0], protocol, params)
    entry = cache.entry_dir("splits", f"{spec.name}-{protocol.name}", key)
    return _Located(spec, protocol, params, keyed, key, entry)


def _split_key(data_key: str, protocol: Protocol, params: dict[str, Any]) -> str:
    return stable_hash(
        {"data": data_key, "protocol": protocol.name, "params": params, "v": cache.DATA_LAYER_VERSION}, 16
    )


def prepare_split(
    dataset: str,
    split: str | None = None,
    split_params: dict[str, Any] | None = None,
    *,
    force: bool = False,
    download: bool = True,
) -> PreparedSplit:
    """Build (or read from the cache) the split ``split`` of ``dataset`` with ``split_params``.

    ``dataset``: a catalog name or alias (``ml-100k``...) or a directory of atomic / pre-split files.
    ``split``: a protocol name; None = the dataset's default. ``split_params`` override the dataset's
    defaults for that protocol, which override the protocol's own. ``download=False`` never fetches raw files.
    """
    start = time.perf_counter()
    where = _locate(dataset, split, split_params, download=download)
    spec, protocol, params, keyed, entry = where.spec, where.protocol, where.params, where.keyed, where.entry
    manifest = None if force else cache.read_manifest(entry)
    if manifest is not None:
        data_entry = _dataset(spec, force=False, keyed=keyed)
        result = _read_split(entry, filters.apply(data_entry.data, params), manifest)
        stats = {**manifest["stats"], "cache_hit": True, "seconds": round(time.perf_counter() - start, 3)}
        return PreparedSplit(result, cache_hit=True, stats=stats)
    data_entry = _dataset(spec, force, download, keyed=keyed)
    # the data itself when the split sets no filter; a pre-split directory refuses filters (_assign)
    data = filters.apply(data_entry.data, params) if data_entry.parts is None else data_entry.data
    result, stats = _build_split(data, data_entry, protocol, params, where.key)
    data_entry.save()
    with cache.building(entry) as tmp:
        cache.write_frames(tmp, result.frames())
        head = {"dataset": data.name, "protocol": protocol.name, "params": params, "hash": result.hash}
        cache.write_manifest(tmp, {**head, "stats": stats})
    stats = {**stats, "cache_hit": False, "data_cache_hit": data_entry.cache_hit}
    stats["seconds"] = round(time.perf_counter() - start, 3)
    return PreparedSplit(result, cache_hit=False, stats=stats)


def _build_split(
    data: InteractionData, data_entry: Any, protocol: Protocol, params: dict[str, Any], key: str
) -> tuple[Split, dict[str, Any]]:
    """Assign rows to train/valid/test by the protocol, check the frames, hash the split; its stats."""
    assignment = _assign(protocol, data_entry, params, data)
    frames = _frames(data, assignment, params)
    where = f"dataset {data.name!r} split {protocol.name!r}"
    check_split(data, frames, where=where, temporal=protocol.temporal, history_len=int(params["history_len"]))
    result = Split(data=data, protocol=protocol.name, params=params, **frames)
    result.hash = result.compute_hash()
    stats = _split_stats(
        result,
        {
            "source": data.stats,
            "protocol_stats": assignment.stats,
            "data_key": data_entry.key,
            "split_key": key,
            "data_hash": data.content_hash(),
            "split_hash": result.hash,
        },
    )
    return result, stats
