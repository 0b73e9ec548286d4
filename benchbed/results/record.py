"""The run record: everything needed to trust, compare and re-derive one result, as versioned JSON.

A record is written for every run, failed ones included, so a leaderboard can say what ran and what broke.
Readers check ``schema_version`` first: a record from a newer benchbed is refused with a clear message rather
than misread.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from benchbed.errors import BenchbedError

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed")


class RecordError(BenchbedError):
    """A record file that cannot be read as a run record (corrupt JSON, unknown schema, missing field)."""


@dataclass
class RunRecord:
    """One run's identity, provenance, metrics and cost (see DESIGN.md "Core contracts").

    ``metrics`` is ``{subset: {flat_metric_key: value}}`` (subsets ``all``/``warm``/``cold``, for prompt
    methods also ``seen``/``unseen``/``unseen:warm``/``unseen:cold``); ``counts`` is ``{subset: {"rows": n,
    "users": n}}``. ``config`` is the RunConfig as given (its hash names the file); ``method_params`` and
    ``task_params`` are the full parameter sets after defaults, which is what makes two rows comparable.
    """

    run_id: str
    created: str
    config: dict[str, Any]
    config_hash: str
    method: str
    method_params: dict[str, Any]
    params_hash: str
    dataset: str
    task: str
    seed: int
    status: str = "ok"
    error: str | None = None
    schema_version: int = SCHEMA_VERSION
    benchbed_version: str = ""
    git_sha: str | None = None
    backbone: dict[str, Any] | None = None
    dataset_hash: str | None = None
    split_protocol: str | None = None
    split_params: dict[str, Any] = field(default_factory=dict)
    split_hash: str | None = None
    task_params: dict[str, Any] = field(default_factory=dict)
    templates: dict[str, Any] | None = None  # {"set": name, "hash": h} from the method, if it uses prompts
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    predictions: str | None = None  # file name of the per-row predictions parquet, next to the record
    rescored: dict[str, Any] | None = None  # set by `benchbed rescore --write`

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = {s: {k: _json_float(v) for k, v in m.items()} for s, m in self.metrics.items()}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, raw: Any, source: str = "record") -> RunRecord:
        """Validate and build; every problem is a one-line ``RecordError`` naming ``source``."""
        if not isinstance(raw, dict):
            raise RecordError(f"{source}: expected a JSON object, got {type(raw).__name__}")
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RecordError(
                f"{source}: unknown schema_version {version!r} (this benchbed reads {SCHEMA_VERSION})"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise RecordError(f"{source}: unknown field(s) {unknown}")
        missing = [name for name in _REQUIRED if name not in raw]
        if missing:
            raise RecordError(f"{source}: missing field(s) {missing}")
        if raw.get("status", "ok") not in STATUSES:
            raise RecordError(f"{source}: status must be one of {list(STATUSES)}, got {raw['status']!r}")
        metrics = raw.get("metrics", {})
        if not isinstance(metrics, dict) or not all(isinstance(v, dict) for v in metrics.values()):
            raise RecordError(f"{source}: 'metrics' must map subset -> {{metric: value}}")
        for subset, values in metrics.items():
            for key, value in values.items():
                if value is not None and not isinstance(value, int | float):
                    raise RecordError(f"{source}: metrics[{subset!r}][{key!r}] is not a number: {value!r}")
        return cls(**raw)


_REQUIRED = (
    "run_id",
    "created",
    "config",
    "config_hash",
    "method",
    "method_params",
    "params_hash",
    "dataset",
    "task",
    "seed",
)


def _json_float(value: float | None) -> float | None:
    """NaN (an undefined metric) is stored as null: JSON has no NaN and null reads as an empty cell."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def read_record(path: Path) -> RunRecord:
    """Load one record file with a one-line error on unreadable JSON or a schema mismatch."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RecordError(f"{path}: no such record") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(
            f"{path}: corrupt JSON ({exc.__class__.__name__}: {str(exc).splitlines()[0]})"
        ) from exc
    return RunRecord.from_dict(raw, source=str(path))
