"""Run configuration: a frozen dataclass, loaded from YAML/CLI, unknown keys rejected, content-hashed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from benchbed.errors import ConfigError


def stable_hash(obj: Any, length: int = 12) -> str:
    """Hash of a JSON-able object with sorted keys: the same config always gives the same hash."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one result. Two runs with equal hashes produce the same record."""

    method: str
    dataset: str = "ml-100k"
    task: str = "ctr"
    split: str | None = None  # None: the dataset's default protocol
    split_params: dict[str, Any] = field(default_factory=dict)
    method_params: dict[str, Any] = field(default_factory=dict)
    task_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str | None = None  # None: cuda when present, else cpu
    dtype: str | None = None  # None: bfloat16 on cuda, float32 on cpu
    save_predictions: bool = True

    def hash(self) -> str:
        d = asdict(self)
        d.pop("save_predictions")
        return stable_hash(d)

    def with_updates(self, **changes: Any) -> RunConfig:
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; expected some of {sorted(known)}")
        if "method" not in raw:
            raise ConfigError(f"{source}: missing key 'method'")
        for key in ("split_params", "method_params", "task_params"):
            if key in raw and not isinstance(raw[key], dict):
                raise ConfigError(f"{source}: {key!r} must be a mapping, got {type(raw[key]).__name__}")
        return cls(**raw)


def load_yaml(path: Path) -> Any:
    """Read a YAML file with a one-line error naming the file on failure."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML") from exc


def parse_value(text: str) -> Any:
    """CLI ``key=value`` values: YAML scalars/lists (``1e-3``, ``true``, ``[64, 128]``) else the string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    return value


def parse_assignments(items: list[str], option: str) -> dict[str, Any]:
    """``["lr=1e-3", "dim=64"]`` -> ``{"lr": 0.001, "dim": 64}`` with a clear error on a bad item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option}: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out
