"""The ID-embedding cache: a service below methods and baselines (it trains nothing itself).

An artifact holds user and item matrices whose row ``i`` is benchbed's user/item ``i`` (for ``sasrec`` and
``din`` also the sequence representation of each user's training history), keyed by (split, model, resolved
params, feedback, seed). Training on a miss is the orchestrator's job
(``benchbed.orchestration.embeddings.RegistryEmbeddings``), handed to methods as ``RunContext.embeddings``.

Artifact: ``<cache>/embeddings/<split hash>/<model>-<params hash>-s<seed>/`` with ``user.npy``,
``item.npy``, optional ``sequence.npy`` and ``manifest.json``; written to a temp dir and renamed into
place, so a reader never sees half an artifact. The params hash covers every resolved parameter (defaults
included) and which rows were positives, so changing a default in code invalidates the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchbed.config import stable_hash
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.settings import get_settings

FORMAT_VERSION = 1
EXPORTABLE = ("mf", "mf-bpr", "lightgcn", "sasrec", "din", "multivae", "als", "comirec")


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


# The task whose training regime a feedback stands for: labels = trained as for ctr, interactions = as for
# topk. The cache key names the regime by that task, so artifacts written before
# ``RunContext.setup.feedback`` existed stay valid; the orchestrator fits a missing baseline for that task.
FEEDBACK_TASK = {"labels": "ctr", "interactions": "topk"}


def _artifact(split: Split, model: str, params: dict[str, Any], feedback: str, seed: int) -> tuple[str, Path]:
    """The params hash and the artifact directory of ``model`` fitted with ``params`` on ``feedback``."""
    if feedback not in FEEDBACK_TASK:
        raise ConfigError(f"embeddings: feedback {feedback!r}; expected one of {sorted(FEEDBACK_TASK)}")
    params_hash = stable_hash({"params": params, "task": FEEDBACK_TASK[feedback], "format": FORMAT_VERSION})
    safe = model.replace(":", "_").replace("/", "_")
    split_hash = split.key
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


def find(split: Split, model: str, params: dict[str, Any], feedback: str, seed: int) -> Embeddings | None:
    """The cached artifact of ``model`` fitted with (resolved) ``params`` for ``feedback``, if any."""
    _, path = _artifact(split, model, params, feedback, seed)
    return _load(path) if (path / "manifest.json").exists() else None


def store(
    split: Split,
    model: str,
    method: Any,
    feedback: str,
    seed: int,
    fit_seconds: float,
    arrays: dict[str, np.ndarray | None] | None = None,
) -> Embeddings:
    """Write a fitted method's embeddings (``arrays``, default ``method.embeddings()``) and manifest under
    the key ``find`` uses, atomically (an equivalent artifact written concurrently by another process
    wins); return them as loaded."""
    params_hash, path = _artifact(split, model, method.params, feedback, seed)
    arrays = method.embeddings() if arrays is None else arrays
    if arrays is None:
        raise ConfigError(f"method {model!r} cannot export embeddings")
    user, item, sequence = arrays["user"], arrays["item"], arrays.get("sequence")
    if user is None or item is None:
        raise ConfigError(f"method {model!r} exported no user or item matrix")
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
        "task": FEEDBACK_TASK[feedback],
        "feedback": feedback,
        "split_hash": split.key,
        "dataset": split.data.name,
        "protocol": split.protocol,
        "split_params": split.params,
        "n_users": int(split.n_users),
        "n_items": int(split.n_items),
        "dims": {"user": int(user.shape[1]), "item": int(item.shape[1])},
        "has_sequence": sequence is not None,
        "fit_seconds": round(fit_seconds, 3),
        "trainable_parameters": method.trainable_parameters(),
        "training": method.backbone_info,
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
