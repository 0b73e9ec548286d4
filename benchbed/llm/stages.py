"""Resumable, shareable training stages on disk.

A stage (e.g. "LoRA on text-only prompts") is identified by a key = hash of everything that determines its
result (split hash, backbone id/revision/dtype, the stage's parameters, template-set hash, seed, budget).
A finished stage is ``<cache>/llm-stages/<name>-<key>/stage.pt`` (written atomically, last); while it runs,
the same folder holds the training loop's per-evaluation checkpoint. So a second method with the same stage
(TALLRec and CoLLM's step 1) loads it instead of training, and a killed run resumes mid-stage.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchbed.atomic import atomic_path, write_json_atomic
from benchbed.config import stable_hash

STAGE_FILE = "stage.pt"


@dataclass
class Stage:
    name: str
    key: str
    dir: Path

    @property
    def done(self) -> bool:
        return (self.dir / STAGE_FILE).is_file()

    def load(self) -> dict[str, Any]:
        return torch.load(self.dir / STAGE_FILE, map_location="cpu", weights_only=False)

    def save(self, blob: dict[str, Any], meta: dict[str, Any]) -> None:
        """Write the stage's result (tensors + JSON-able meta); the marker file goes last."""
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.dir / "meta.json", meta)
        with atomic_path(self.dir / STAGE_FILE) as tmp:
            torch.save({**blob, "meta": meta}, tmp)
        ckpt = self.dir / "train_state.pt"
        if ckpt.exists():
            ckpt.unlink()

    def meta(self) -> dict[str, Any]:
        path = self.dir / "meta.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def clear(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)


def stage(cache_dir: Path, name: str, identity: dict[str, Any]) -> Stage:
    key = stable_hash(identity, length=16)
    return Stage(name=name, key=key, dir=Path(cache_dir) / "llm-stages" / f"{name}-{key}")
