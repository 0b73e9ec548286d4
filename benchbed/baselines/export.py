"""ID embeddings for LLM methods: trained once per (split, model, params, seed, task) and cached.

``get_embeddings(split, "mf")`` trains benchbed's ``mf`` baseline on the split (or reuses the cached
artifact) and returns user and item matrices whose row ``i`` is benchbed's user/item ``i``. For ``sasrec``
and ``din`` it also returns the sequence representation of each user's training history.

Artifact: ``<cache>/embeddings/<split hash>/<model>-<params hash>-s<seed>/`` with ``user.npy``,
``item.npy``, optional ``sequence.npy`` and ``manifest.json``; written to a temp dir and renamed into
place, so a reader never sees half an artifact. The params hash covers every resolved parameter (defaults
included) and the task the model was trained for, so changing a default in code invalidates the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchbed.config import stable_hash
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.methods.base import RunContext
from benchbed.settings import get_settings

FORMAT_VERSION = 1
EXPORTABLE = ("mf", "mf-bpr", "lightgcn", "sasrec", "din", "multivae", "als")


@dataclass
class Embeddings:
    """Rows aligned with benchbed's dense ids: ``user[u]`` is user ``u``, ``item[i]`` is item ``i``."""

    user: np.ndarray  # (n_users, d)
    item: np.ndarray  # (n_items, d)
    sequence: np.ndarray | None = None  # (n_users, d): the user's training history encoded (sasrec, din)
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the artifact directory
    cache_hit: bool = False

    @property
    def dim(self) -> int:
        return int(self.item.shape[1])


def _artifact(split: Split, model: str, params: dict[str, Any], task: str, seed: int) -> tuple[str, Path]:
    """The params hash and the artifact directory of ``model`` fitted with ``params`` for ``task``."""
    params_hash = stable_hash({"params": params, "task": task, "format": FORMAT_VERSION})
    safe = model.replace(":", "_").replace("/", "_")
    split_hash = split.hash or split.compute_hash()
    return params_hash, get_settings().cache_dir / "embeddings" / split_hash / f"{safe}-{params_hash}-s{seed}"


def _load(path: Path) -> Embeddings:
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    seq = path / "sequence.npy"
    return Embeddings(
        user=np.load(path / "user.npy"),
        item=np.load(path / "item.npy"),
        sequence=np.load(seq) if seq.exists() else None,
        manifest=manifest,
        path=path,
        cache_hit=True,
    )


def get_embeddings(
    split: Split,
    model: str,
    *,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    ctx: RunContext | None = None,
) -> Embeddings:
    """User/item (and sequence) embeddings of ``model`` trained on ``split``; cached and reused.

    ``ctx`` decides the task the model is trained for (``ctr`` trains on labels, ``topk`` on all
    interactions) and the device; without it: ``ctr`` for labeled splits, ``topk`` otherwise, on the CPU.
    """
    from benchbed.methods import build_method

    if model not in EXPORTABLE and not model.startswith("recbole:"):
        raise ConfigError(f"no embedding export for method {model!r}; exportable: {', '.join(EXPORTABLE)}")
    method = build_method(model, dict(params or {}))
    task = ctx.task if ctx is not None else ("ctr" if split.labeled else "topk")
    params_hash, path = _artifact(split, model, method.params, task, seed)
    if (path / "manifest.json").exists():
        return _load(path)

    if ctx is None:
        ctx = RunContext(task=task, seed=seed, cache_dir=get_settings().cache_dir)
    elif ctx.seed != seed:
        ctx = replace(ctx, seed=seed)
    start = time.perf_counter()
    method.fit(split, ctx)
    emb = _store(path, split, model, method, task, seed, params_hash, time.perf_counter() - start)
    emb.cache_hit = False
    return emb


def keep_fitted_embeddings(
    split: Split, model: str, method: Any, ctx: RunContext, fit_seconds: float
) -> bool:
    """Store the embeddings of a baseline that ``benchbed run`` has just fitted, under the key
    :func:`get_embeddings` would use, so that an LLM method asking for them next (collm after its ``mf``
    companion) reuses this model instead of training the same one again. Returns True if it stored them."""
    if model not in EXPORTABLE or not hasattr(method, "embeddings"):
        return False
    params_hash, path = _artifact(split, model, method.params, ctx.task, ctx.seed)
    if (path / "manifest.json").exists():
        return False
    _store(path, split, model, method, ctx.task, ctx.seed, params_hash, fit_seconds)
    return True


def _store(
    path: Path,
    split: Split,
    model: str,
    method: Any,
    task: str,
    seed: int,
    params_hash: str,
    fit_seconds: float,
) -> Embeddings:
    """Write a fitted method's embeddings and manifest atomically at ``path``; return them as loaded."""
    if not hasattr(method, "embeddings"):
        raise ConfigError(f"method {model!r} cannot export embeddings")
    arrays = method.embeddings()
    user, item, sequence = arrays["user"], arrays["item"], arrays.get("sequence")
    if user.shape[0] != split.n_users or item.shape[0] != split.n_items:
        raise ConfigError(  # a bug, not user input: say exactly what is off
            f"{model}: exported {user.shape[0]} users / {item.shape[0]} items, split has "
            f"{split.n_users} / {split.n_items}"
        )
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": model,
        "params": method.params,
        "params_hash": params_hash,
        "seed": seed,
        "task": task,
        "split_hash": split.hash or split.compute_hash(),
        "dataset": split.data.name,
        "protocol": split.protocol,
        "split_params": split.params,
        "n_users": int(split.n_users),
        "n_items": int(split.n_items),
        "dims": {"user": int(user.shape[1]), "item": int(item.shape[1])},
        "has_sequence": sequence is not None,
        "fit_seconds": round(fit_seconds, 3),
        "trainable_parameters": method.trainable_parameters(),
        "training": getattr(method, "backbone_info", {}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_atomic(path, {"user": user, "item": item, "sequence": sequence}, manifest)
    return _load(path)


def _write_atomic(path: Path, arrays: dict[str, np.ndarray | None], manifest: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name, array in arrays.items():
            if array is not None:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(array, dtype=np.float32))
        (tmp / "manifest.json").write_text(
            json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
        )
        if path.exists():  # a stale artifact without a manifest (an older crash): replace it
            shutil.rmtree(path, ignore_errors=True)
        try:
            os.replace(tmp, path)
        except OSError:  # a concurrent writer finished first; its artifact is equivalent
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
