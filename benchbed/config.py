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
            bad = [k for k in raw.get(key) or {} if not isinstance(k, str)]
            if bad:
                raise ConfigError(f"{source}: {key!r} keys must be names, got {bad[0]!r}")
        for key, value in raw.items():
            _check_field(source, key, value)
        return cls(**raw)


SEED_MAX = 2**63 - 1  # torch.manual_seed and numpy take 64-bit seeds; the record stores it as JSON int


def _check_field(source: str, key: str, value: Any) -> None:
    """Type checks of the scalar RunConfig keys (a YAML file can hold any type): one line naming the key."""
    if key in ("method", "dataset", "task"):
        if not isinstance(value, str) or not value.strip():
            what = {"method": "a method name", "dataset": "a catalog name or a dataset directory"}
            noun = what.get(key, "a task name")
            raise ConfigError(f"{source}: {key!r} must be {noun} (a non-empty string), got {value!r}")
    elif key in ("split", "device", "dtype"):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{source}: {key!r} must be a non-empty string or null, got {value!r}")
    elif key == "seed":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= SEED_MAX:
            raise ConfigError(f"{source}: 'seed' must be an integer in [0, 2**63-1], got {value!r:.40}")
    elif key == "save_predictions" and not isinstance(value, bool):
        raise ConfigError(f"{source}: 'save_predictions' must be true or false, got {value!r}")


def load_yaml(path: Path) -> Any:
    """Read a YAML file with a one-line error naming the file on failure."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (expected YAML)") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory; expected a YAML file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from exc
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
