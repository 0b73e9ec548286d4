"""Resumable, shareable training stages on disk.

A stage (e.g. "LoRA on text-only prompts") is identified by a key = hash of everything that determines its
result (split hash, backbone id/revision/dtype, the stage's parameters, template-set hash, seed, budget):
``stable_hash(identity, length=16)``, unchanged since the first stage caches were written.
A finished stage is ``<cache>/llm-stages/<name>-<key>/stage.pt`` (written atomically, last) with
``meta.json`` beside it; while it runs, the same folder holds the training loop's checkpoint
(:mod:`benchbed.llm.train`). So a second method with the same stage (TALLRec and CoLLM's step 1) loads it
instead of training, and a killed run resumes mid-stage.

``meta.json`` carries the SHA-256 of ``stage.pt``; :meth:`Stage.load` checks it, so a corrupt or truncated
blob is a one-line error telling the user to delete the folder instead of weights that load half-wrong.
Stages written before the hash existed load unchecked.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchbed import locks, parallel, sharding
from benchbed.atomic import atomic_path, write_json_atomic
from benchbed.config import stable_hash
from benchbed.errors import ConfigError
from benchbed.llm.train import CHECKPOINT_NAME

STAGE_FILE = "stage.pt"
META_FILE = "meta.json"
HASH_KEY = "stage_sha256"  # in meta.json only; :meth:`Stage.meta` and the blob's "meta" leave it out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Stage:
    name: str
    key: str
    dir: Path

    @property
    def done(self) -> bool:
        return (self.dir / STAGE_FILE).is_file()

    def _broken(self, why: str) -> ConfigError:
        return ConfigError(f"stage {self.name} in {self.dir}: {why}; delete that folder to retrain the stage")

    def load(self) -> dict[str, Any]:
        """The saved blob (tensors + ``meta``), after checking it against the hash in ``meta.json``."""
        path = self.dir / STAGE_FILE
        expected = self._raw_meta().get(HASH_KEY)
        if expected is not None and file_sha256(path) != expected:
            raise self._broken(f"{STAGE_FILE} does not match its hash in {META_FILE} (corrupt or truncated)")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise self._broken(f"{STAGE_FILE} cannot be read ({type(exc).__name__})") from exc
        if not isinstance(blob, dict):
            raise self._broken(f"{STAGE_FILE} holds a {type(blob).__name__}, not a stage blob")
        return blob

    def save(self, blob: dict[str, Any], meta: dict[str, Any]) -> None:
        """Write the stage's result (tensors + JSON-able meta); ``stage.pt``, the marker, lands last."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.dir / STAGE_FILE) as tmp:
            torch.save({**blob, "meta": meta}, tmp)
            write_json_atomic(self.dir / META_FILE, {**meta, HASH_KEY: file_sha256(tmp)})
        ckpt = self.dir / CHECKPOINT_NAME
        if ckpt.exists():
            ckpt.unlink()

    def _raw_meta(self) -> dict[str, Any]:
        path = self.dir / META_FILE
        if not path.is_file():
            return {}
        try:
            raw = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._broken(f"{META_FILE} is not valid JSON") from exc
        return raw if isinstance(raw, dict) else {}

    def meta(self) -> dict[str, Any]:
        """The stage's meta as the training call saved it (without the blob hash)."""
        return {k: v for k, v in self._raw_meta().items() if k != HASH_KEY}

    def clear(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)


def stage(cache_dir: Path, name: str, identity: dict[str, Any]) -> Stage:
    key = stable_hash(identity, length=16)
    return Stage(name=name, key=key, dir=Path(cache_dir) / "llm-stages" / f"{name}-{key}")


@dataclass
class StageOutcome:
    """What a caller records about a stage: its meta, whether it came from disk, and where it lives."""

    meta: dict[str, Any]
    loaded: bool
    dir: Path
    blob: dict[str, Any] = field(default_factory=dict, repr=False)

    def info(self) -> dict[str, Any]:
        """``{**meta, "loaded": ..., "dir": ...}``: the form CTR methods put into their record info."""
        return {**self.meta, "loaded": self.loaded, "dir": str(self.dir)}


def run_or_load(
    st: Stage,
    train_fn: Callable[[Path], tuple[dict[str, Any], dict[str, Any]]],
    load_fn: Callable[[dict[str, Any]], None],
) -> StageOutcome:
    """Load a finished stage (``load_fn(blob)`` puts its tensors in place) or train it: ``train_fn(stage_dir)
    -> (blob, meta)`` trains with the stage folder as checkpoint dir, and the result is saved. One place for
    the done/load/train/save sequence that every stage of every method repeats.

    One process at a time trains a stage (a file lock per stage identity, :mod:`benchbed.locks`): a second
    run that needs it waits, then loads what the first one saved."""
    if not parallel.world().is_main:  # data parallel: the main process holds the lock for every rank
        return _run_or_load(st, train_fn, load_fn)
    lock_file = st.dir.parent / ".locks" / f"{st.dir.name}.lock"
    with locks.hold(lock_file, f"stage {st.name} ({st.dir.name})", on_wait=_say):
        return _run_or_load(st, train_fn, load_fn)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_or_load(
    st: Stage,
    train_fn: Callable[[Path], tuple[dict[str, Any], dict[str, Any]]],
    load_fn: Callable[[dict[str, Any]], None],
) -> StageOutcome:
    if st.done:
        blob = st.load()
        load_fn(blob)
        meta = blob.get("meta")
        return StageOutcome(dict(meta) if isinstance(meta, dict) else st.meta(), True, st.dir, blob)
    blob, meta = train_fn(st.dir)
    if parallel.world().lockstep:  # FSDP: a fine-tuned block's tensors are shards; the blob holds them whole
        blob = sharding.gather_full(blob)
    if parallel.world().is_main:  # data parallel: every rank holds the same result, one writes it
        st.save(blob, meta)
    parallel.barrier()
    return StageOutcome(dict(meta), False, st.dir, blob)


def param_loader(params: dict[str, Any], st: Stage) -> Callable[[dict[str, Any]], None]:
    """The ``load_fn`` of a stage whose blob is ``{"params": {name: tensor}}``: put every one of ``params``
    back (into its shard under FSDP), or fail in one line naming the first one the blob lacks."""

    def load(blob: dict[str, Any]) -> None:
        saved = blob["params"]
        missing = sorted(set(params) - set(saved))
        if missing:
            raise ConfigError(f"cached stage {st.dir} lacks parameter {missing[0]}; delete it to retrain")
        with torch.no_grad():
            for name, param in params.items():
                sharding.assign(param, saved[name])

    return load


@dataclass(frozen=True)
class StageSpec:
    """A stage as a method declares it: its name and what it reads. The kit (:class:`StageChain`) builds the
    identity, and so the cache key, from this and the run's context; no method hashes anything itself.

    ``reads``: everything beyond the run context that determines the stage's tensors (its parameters'
    values, effective settings a variant derives, content hashes of the data and templates it sees), as
    JSON-able values. ``after``: identity field -> the name of an earlier stage of the same chain whose key
    that field holds, so whatever changed the earlier stage changes this one's key too. A stage that draws its
    RNG from its key (:func:`stage_seed`) gets the same draws whether the earlier stages trained or loaded."""

    name: str
    reads: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, str] = field(default_factory=dict)
    folder: str = ""  # the cache folder's prefix when it differs from ``name`` (e.g. one per variant)

    @property
    def prefix(self) -> str:
        return self.folder or self.name


@dataclass
class StageRun:
    """One stage of a chain after it ran: its cache entry and what the training call returned or the cache
    held."""

    spec: StageSpec
    stage: Stage
    outcome: StageOutcome

    @property
    def key(self) -> str:
        return self.stage.key

    @property
    def loaded(self) -> bool:
        return self.outcome.loaded

    def log_entry(self) -> dict[str, Any]:
        """The stage's entry in a record's stage log: its key, whether it came from the cache, its meta."""
        if self.loaded:
            return {"stage": self.spec.name, "key": self.key, "cached": True, **self.stage.meta()}
        return {"key": self.key, "cached": False, **self.outcome.meta}


class StageChain:
    """The stages of one fit: built once with the run's context (what every stage reads: the split, the
    backbone's id/revision/dtype, the seed, method-wide settings), then :meth:`run` per stage in order.

    One place for identity -> key -> train-or-load -> record: a method declares its stages
    (:class:`StageSpec`) and hands over the training and loading functions; keys, the cache folder,
    locking, resuming, the FSDP gather and the record's stage entries are the kit's."""

    def __init__(self, cache_dir: Path, context: Mapping[str, Any]):
        self.cache_dir = Path(cache_dir)
        self.context = dict(context)
        self.runs: dict[str, StageRun] = {}

    def identity(self, spec: StageSpec) -> dict[str, Any]:
        """The stage's identity: the context, its reads and the keys of the stages it builds on."""
        missing = [name for name in spec.after.values() if name not in self.runs]
        if missing:
            raise ConfigError(f"stage {spec.name} builds on {missing[0]}, which has not run in this chain")
        clash = sorted((set(spec.reads) | set(spec.after)) & set(self.context))
        if clash:
            raise ConfigError(f"stage {spec.name}: {clash[0]!r} is both in the run context and the stage")
        both = sorted(set(spec.reads) & set(spec.after))
        if both:
            raise ConfigError(f"stage {spec.name}: {both[0]!r} is both a read and an upstream stage's key")
        after = {fld: self.runs[name].key for fld, name in spec.after.items()}
        return {**self.context, **spec.reads, **after}

    def stage(self, spec: StageSpec) -> Stage:
        """The cache entry ``spec`` names in this chain (nothing is trained or loaded)."""
        return stage(self.cache_dir, spec.prefix, self.identity(spec))

    def run(
        self,
        spec: StageSpec,
        train_fn: Callable[[Path], tuple[dict[str, Any], dict[str, Any]]],
        load_fn: Callable[[dict[str, Any]], None],
    ) -> StageRun:
        """Load the stage when it finished before under this identity, else train it (``train_fn(dir) ->
        (blob, meta)``, resumable from the folder's checkpoint) and save it; see :func:`run_or_load`."""
        st = self.stage(spec)
        result = StageRun(spec, st, run_or_load(st, train_fn, load_fn))
        self.runs[spec.name] = result
        return result

    def skip(self, spec: StageSpec) -> Stage:
        """Record a stage that does not run (e.g. zero epochs) under its key: later stages build on it."""
        st = self.stage(spec)
        self.runs[spec.name] = StageRun(spec, st, StageOutcome({"skipped": True}, False, st.dir))
        return st

    def key(self, name: str) -> str:
        return self.runs[name].key


def run_context(split_key: str, backbone_info: Mapping[str, Any], seed: int, **extra: Any) -> dict[str, Any]:
    """The context most chains start from: the split's content hash, the backbone's id/revision/dtype and
    the seed, plus the method-wide settings every stage of the method reads (``extra``)."""
    return {
        "split": split_key,
        "backbone": {k: backbone_info.get(k) for k in ("id", "revision", "dtype")},
        "seed": seed,
        **extra,
    }


def stage_seed(key: str) -> int:
    """An RNG seed drawn from a stage's key: the same draws whether the stages before it trained or loaded."""
    return int(key[:8], 16)


def accumulation_identity(grad_accum: int, key: str = "grad_accum") -> dict[str, int]:
    """A stage identity's entry for gradient accumulation: empty without it (``grad_accum`` 1), so a stage
    trained without accumulation keeps the key it had before the parameter existed (cached stages stay
    valid, and cllm4rec's dropout seed, drawn from the key, stays the same)."""
    return {} if int(grad_accum) == 1 else {key: int(grad_accum)}
